"""Progress events: one JSON object a line, in a file and on standard output.

Every event has the keys in ``REQUIRED``; the rest depend on the event. The
same line goes to ``<phase>.events.jsonl`` (the local executor follows it) and,
behind ``layout.EVENT_PREFIX``, to standard output (a Kubernetes executor finds it in the
pod log). A progress display, a log parser and a test read the same stream.
"""
import json
import sys
import time

from harness.workload.layout import EVENT_PREFIX

VERSION = 1
REQUIRED = ("v", "t", "event", "backend", "phase")

# event names
START = "start"
DATA_LOADED = "data_loaded"
MODEL_READY = "model_ready"
EPOCH_START = "epoch_start"
STEP = "step"
EPOCH_END = "epoch_end"
EVALUATED = "evaluated"
PREDICTED = "predicted"
TIMED_START = "timed_start"
TIMED_END = "timed_end"
"""Around each timed section of a speed job (``section``: train or predict) or a serve job
(single-stream, offline, server): the isolation rule (no other job runs meanwhile) is checked
against these."""
SERVED = "served"
"""After each scenario of a serve job (``scenario``: single-stream, offline or server), with its headline."""
DONE = "done"
ERROR = "error"


class EventLog(object):
    """Appends events for one job; never lets a write failure stop the work."""

    def __init__(self, path, backend, phase, stream=None):
        self.path = path
        self.backend = backend
        self.phase = phase
        self.stream = stream if stream is not None else sys.stdout
        self._handle = open(path, "a") if path else None

    def emit(self, event, **fields):
        record = {"v": VERSION, "t": round(time.time(), 3), "event": event,
                  "backend": self.backend, "phase": self.phase}
        record.update(fields)
        line = json.dumps(record, sort_keys=True)
        try:
            if self._handle:
                self._handle.write(line + "\n")
                self._handle.flush()
            self.stream.write(EVENT_PREFIX + line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass
        return record

    def close(self):
        if self._handle:
            self._handle.close()
            self._handle = None


def parse_line(line):
    """The event in one line of a log or events file, or None if it holds none."""
    line = line.strip()
    if line.startswith(EVENT_PREFIX):
        line = line[len(EVENT_PREFIX):]
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or any(k not in record for k in REQUIRED):
        return None
    return record
