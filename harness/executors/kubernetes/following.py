"""Submitting one Job and following it to its end, through a busy cluster and a flaky control plane.

What a benchmark job and the write probe share:

* **Creating** the Job: one of the same name left by an earlier session of
  the run is replaced; a create whose answer was lost recognises its own Job
  (by a token); a quota that is used up (``exceeded quota``) is waited out
  while other Jobs of the run still run or for up to ``--k8s-capacity-wait``,
  and the run's own finished Jobs, which still count against a
  ``count/jobs.batch`` quota, are deleted to make room (their logs and
  results were read already).
* **Following** it: list-then-watch (``watch``), which waits out a control
  plane that is down (a managed cluster's upgrade takes minutes) up to the
  Job's own deadline; its pods by the Job's uid; why they do not start
  (``starting``); and a pod that runs past the job's own timeout.
* **Giving up**, for any reason (stuck, past its deadline, the harness
  interrupted, an error): the Job is deleted with its pods, or, when even that
  fails, the exact ``kbench cleanup`` command is part of the job's reason.
"""
from __future__ import annotations

import logging
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.executors.kubernetes import manifests, status
from harness.executors.kubernetes.errors import AlreadyExists, Forbidden, KubeError, NotFound
from harness.executors.kubernetes.settings import K8sSettings
from harness.executors.kubernetes.starting import StartLimits, StartWatch
from harness.executors.kubernetes.watch import JobWatch
from harness.jobs import JobSpec, JobState

if TYPE_CHECKING:
    from harness.executors.kubernetes.client import KubeApi

log = logging.getLogger("harness.executors.kubernetes")

DEADLINE_GRACE_S = 120.0
"""How long past a Job's activeDeadlineSeconds the harness waits for the controller to fail it."""
REPLACE_WAIT_S = 120.0
"""How long to wait for a stale Job of the same name to go away before creating ours."""
QUOTA_RETRY_S = 5.0
"""Pause between creates a used-up quota refused."""

Ending = tuple[JobState, str]


def cleanup_command(run_id: str, k8s: K8sSettings) -> str:
    """The exact ``kbench cleanup`` command that deletes every Job of a run, as these settings reach the cluster."""
    words = ["kbench", "cleanup", "--run-id", run_id, "--k8s-namespace", k8s.namespace]
    if k8s.context:
        words += ["--k8s-context", k8s.context]
    if k8s.kubeconfig:
        words += ["--k8s-kubeconfig", k8s.kubeconfig]
    return shlex.join(words)


@dataclass
class Jobs:
    """The executor's Jobs that are being followed (for cancel_all) and those concluded (for quota room)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    watches: dict[str, JobWatch] = field(default_factory=dict)
    concluded: list[str] = field(default_factory=list)
    """Jobs whose logs and results were read and that were not deleted: they may go to make room."""
    run_ids: set[str] = field(default_factory=set)

    def others_running(self, name: str) -> bool:
        with self.lock:
            return any(other != name for other in self.watches)


@dataclass
class Followed:
    """How following a Job ended."""

    job: dict | None = None
    """The Job's last known state (None: deleted)."""
    pods: list[dict] = field(default_factory=list)
    ending: Ending | None = None
    """Set when the harness gave up (or was interrupted); None when the Job ended by itself."""


class JobFollower:
    """Creates one Job and follows it until it ends or the harness gives up on it (then deletes it)."""

    def __init__(self, api: KubeApi, k8s: K8sSettings, jobs: Jobs, spec: JobSpec, manifest: dict,
                 submission: str, stop: threading.Event, say: Callable[[str], None],
                 events: Callable[[], list[dict]]):
        self.api = api
        self.k8s = k8s
        self.jobs = jobs
        self.spec = spec
        self.manifest = manifest
        self.name = manifest["metadata"]["name"]
        self.submission = submission
        self.stop = stop
        self.say = say
        self.events = events
        self.deadline_s = manifests.active_deadline_s(spec, k8s) + DEADLINE_GRACE_S
        """Past this (from the submission) the Job should have been failed by its controller: give up."""
        self.watch = JobWatch(api, self.name, k8s.poll_s, give_up_after_s=self.deadline_s)
        self.starting = StartWatch(StartLimits(k8s.schedule_timeout_s, k8s.start_grace_s, k8s.capacity_wait_s,
                                               k8s.image_pull_secrets))
        self.job_uid: str | None = None
        self._running_since: dict[str, float] = {}

    # -- creating ------------------------------------------------------------------------------------
    def create(self) -> None:
        """Create the Job (see the module docstring); raise a ``KubeError`` saying why it cannot be."""
        with self.jobs.lock:
            self.jobs.watches[self.name] = self.watch
            self.jobs.run_ids.add(self.spec.run_id)
        waited = time.monotonic()
        told = False
        while True:
            try:
                created = self._create_or_replace()
                break
            except Forbidden as err:
                if not (err.refusal and err.refusal.quota_used_up):
                    raise
                if self.stop.is_set():
                    raise KubeError("cancelled: the harness was interrupted") from None
                if self._free_room():
                    continue
                lasted = time.monotonic() - waited
                if not self.jobs.others_running(self.name) and lasted > self.k8s.capacity_wait_s:
                    raise KubeError(f"{err} (waited {lasted:.0f} s for room, --k8s-capacity-wait)", err.status,
                                    err.reason) from None
                if not told:
                    told = True
                    self.say(f"Job {self.name} waits for room in the namespace's quota ({err.refusal.source}) "
                             f"while other jobs run; --parallel sets how many run at once")
                if self.stop.wait(QUOTA_RETRY_S):
                    raise KubeError("cancelled: the harness was interrupted") from None
        self.job_uid = (created.get("metadata") or {}).get("uid")

    def _free_room(self) -> bool:
        """Delete the run's concluded Jobs (they still count against a Job-count quota); True if any went."""
        with self.jobs.lock:
            names, self.jobs.concluded = list(self.jobs.concluded), []
        freed = False
        for name in names:
            try:
                freed = self.api.delete_job(name, "Background", retries=1) or freed
            except KubeError as err:
                log.info("could not delete the concluded Job %s to make room: %s", name, err)
        return freed

    def _create_or_replace(self) -> dict:
        """Create the Job and return it as created; replace one of the same name left by an earlier session."""
        name = self.name
        try:
            return self.api.create_job(self.manifest)
        except AlreadyExists:
            pass
        try:
            existing = self.api.read_job(name)
        except NotFound:
            existing = {}
        metadata = existing.get("metadata") or {}
        if (metadata.get("annotations") or {}).get(manifests.SUBMISSION_ANNOTATION) == self.submission:
            return existing  # our own create, retried after its answer was lost
        if existing and (metadata.get("labels") or {}).get(manifests.RUN_LABEL) != manifests.label_value(
                self.spec.run_id):
            raise KubeError(f"a Job named {name} already exists in namespace {self.k8s.namespace} and is not from "
                            f"run {self.spec.run_id}; delete it or choose another --run-id")
        if existing:
            log.info("replacing Job %s, left by an earlier session of run %s", name, self.spec.run_id)
            self.api.delete_job(name, "Foreground")
            waited = time.monotonic()
            while True:
                try:
                    self.api.read_job(name)
                except NotFound:
                    break
                if time.monotonic() - waited > REPLACE_WAIT_S or self.stop.wait(0.5):
                    raise KubeError(f"the earlier Job {name} did not go away within {REPLACE_WAIT_S:.0f} s; delete "
                                    f"it (kubectl -n {self.k8s.namespace} delete job {name}) and run again")
        return self.api.create_job(self.manifest)

    # -- following -----------------------------------------------------------------------------------
    def follow(self, on_step: Callable[[list[dict]], None] = lambda pods: None) -> Followed:
        """Wait until the Job ends or the harness gives up on it; ``on_step`` sees the pods after each check."""
        followed = Followed()
        submitted = time.monotonic()
        try:
            while True:
                followed.job = self.watch.poll()
                on_step(followed.pods)  # progress from the shared folder, also while the API server is away
                if self.stop.is_set():
                    followed.ending = (JobState.CANCELLED, "cancelled: the harness was interrupted")
                elif status.finished(followed.job):
                    return followed
                elif self.watch.deleted:
                    followed.ending = (JobState.FAILED, self._deleted())
                elif self.watch.healthy:  # while the API server is away, only the watch keeps trying
                    followed.pods = self.list_pods(retries=0) or followed.pods  # the next step tries again
                    events = self.events() if self.starting.needs_events(followed.pods) else []
                    followed.ending = self._stuck(followed.pods, events, time.monotonic() - submitted)
                    for line in self.starting.notices:
                        self.say(line)
                    self.starting.notices.clear()
                    if followed.ending and self._recheck():  # the Job ended or went away meanwhile
                        if status.finished(self.watch.job):
                            followed.job, followed.ending = self.watch.job, None
                            return followed
                        followed.ending = (JobState.FAILED, self._deleted())
                elif time.monotonic() - submitted > self.deadline_s:
                    lost = f"lost the Kubernetes API for longer than the Job's deadline ({self.deadline_s:.0f} s)"
                    followed.ending = (JobState.FAILED, lost)
                if followed.ending:
                    followed.ending = self.give_up(followed.ending)
                    return followed
        except HarnessError as err:
            followed.ending = self.give_up((JobState.FAILED, status.one_line(str(err), 400)))
            return followed

    def _deleted(self) -> str:
        return f"Job {self.name} was deleted before it finished (kubectl, a cleanup or another harness?)"

    def list_pods(self, retries: int | None = None) -> list[dict]:
        """The Job's pods, by the first selector that finds any (controller-uid, then the legacy label)."""
        try:
            for selector in manifests.pod_selectors(self.job_uid, self.name):
                pods = self.api.list_pods(selector, retries=retries)
                if pods:
                    return pods
        except KubeError as err:
            log.warning("cannot list the pods of Job %s: %s", self.name, err)
        return []

    def _stuck(self, pods: list[dict], events: list[dict], waited_s: float) -> Ending | None:
        """A reason to stop waiting for a Job that is not over, or None."""
        problem = self.starting.judge(pods, manifests.CONTAINER, events, self.job_uid)
        if problem:
            return JobState.FAILED, problem
        if not pods and waited_s > self.k8s.schedule_timeout_s + self.k8s.capacity_wait_s:
            return JobState.FAILED, (f"no pod was created within {waited_s:.0f} s; see `kubectl -n "
                                     f"{self.k8s.namespace} describe job {self.name}` for the reason (quota, "
                                     "admission)")
        overran = self._overran(pods)
        if overran:
            return overran
        if waited_s > self.deadline_s:
            return JobState.TIMED_OUT, (f"the Job did not end {DEADLINE_GRACE_S:.0f} s after its deadline; is the "
                                        "cluster's Job controller running?")
        return None

    def _overran(self, pods: Sequence[dict]) -> Ending | None:
        """A pod that has run longer than the job's own timeout (the Job's deadline also covers waiting for room)."""
        now = time.monotonic()
        for pod in pods:
            name = status.name_of(pod)
            if (pod.get("status") or {}).get("phase") != "Running":
                self._running_since.pop(name, None)
                continue
            ran = now - self._running_since.setdefault(name, now)
            if ran > self.spec.timeout_s + DEADLINE_GRACE_S:
                return JobState.TIMED_OUT, (f"pod {name} ran for {ran:.0f} s, past the job's timeout of "
                                            f"{self.spec.timeout_s:.0f} s; raise the profile's job timeout "
                                            "(--job-timeout) or use a smaller profile")
        return None

    def _recheck(self) -> bool:
        """Read the Job once more before giving up on it: True if it has ended or is gone.

        A watch can miss a change (a deletion between a list and the next
        watch, on a server that does not replay from the resourceVersion).
        """
        try:
            self.watch.relist()
        except KubeError as err:
            log.info("cannot read Job %s again: %s", self.name, err)
            return False
        return self.watch.deleted or bool(status.finished(self.watch.job))

    # -- giving up -----------------------------------------------------------------------------------
    def give_up(self, ending: Ending) -> Ending:
        """Delete the Job and its pods; when that fails too, the ending says the exact command that will."""
        state, reason = ending
        if self.watch.deleted:
            return ending
        try:
            self.api.delete_job(self.name, "Foreground", retries=0 if state is JobState.CANCELLED else 1)
        except KubeError as err:
            log.warning("could not delete Job %s: %s", self.name, err)
            reason = (f"{reason}; the Job may still run and could not be deleted ({type(err).__name__}): delete "
                      f"it with `{cleanup_command(self.spec.run_id, self.k8s)}`")
        return state, reason

    def close(self, concluded: bool) -> None:
        """Stop being followed; a concluded Job that still exists may be deleted later to make quota room."""
        self.watch.stop()
        with self.jobs.lock:
            self.jobs.watches.pop(self.name, None)
            if concluded and not self.watch.deleted:
                self.jobs.concluded.append(self.name)
