"""The context a job runs in: its run settings, its folder and its event log."""
import json
import os
import time

from harness.workload import layout
from harness.workload.events import EventLog


class JobError(Exception):
    """The job cannot do its work; the message says why and what to do."""

    exit_code = 1


class UsageError(JobError):
    exit_code = 2


class InputError(JobError):
    """Bad input: data set, run.json or weights. Retrying will not help."""

    exit_code = 3


class Job(object):
    def __init__(self, shared, run_id, backend, phase, started):
        self.shared = shared
        self.run_id = run_id
        self.backend = backend
        self.phase = phase
        self.started = started
        self.run_dir = layout.run_dir(shared, run_id)
        self.dir = layout.backend_dir(shared, run_id, backend)
        self.cache_dir = layout.cache_dir(shared)
        self.settings = self._read_run_json()
        self.profile = self.settings["profile"]
        if not os.path.isdir(self.dir):
            os.makedirs(self.dir)
        layout.remove_stale_temporaries(self.dir)
        self.events = EventLog(os.path.join(self.dir, layout.events_name(phase)), backend, phase)

    def _read_run_json(self):
        path = os.path.join(self.run_dir, layout.RUN_JSON)
        try:
            with open(path) as handle:
                settings = json.load(handle)
        except (OSError, ValueError) as err:
            raise InputError("cannot read %s (%s); start the run through the harness, which writes it"
                             % (path, err))
        if settings.get("schema") != layout.SCHEMA_VERSION:
            raise InputError("%s has schema %r but this workload reads %d; run the workload from the same "
                             "harness version" % (path, settings.get("schema"), layout.SCHEMA_VERSION))
        return settings

    def path(self, name):
        return os.path.join(self.dir, name)

    def elapsed(self):
        return time.time() - self.started

    def say(self, message):
        print("[%s/%s] %s" % (self.backend, self.phase, message), flush=True)
