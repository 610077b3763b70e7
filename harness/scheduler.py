"""Run a plan of jobs through an executor: a few at a time, each after the jobs whose outputs it reads,
and the jobs of phases that run alone with nothing beside them.

What waits for what is the phase table's (``harness.phases``): a job runs
only after its backend's jobs of the phases it ``reads`` succeeded, starts
only once every job of the phases it ``reads_every`` has ended, and a job of
a phase that runs ``alone`` starts only when no job runs, and none starts
beside it.

Jobs run in worker threads (an executor's ``run`` blocks); everything the user
sees (progress events, finished jobs) is handed to the thread that waits in
``result``, so callbacks never run concurrently.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from harness import phases
from harness.executors.base import Executor
from harness.jobs import JobResult, JobSpec, JobState

Key = tuple[str, str]


class Scheduler:
    def __init__(
        self,
        executor: Executor,
        jobs: Iterable[JobSpec],
        parallel: int,
        done: Mapping[Key, JobResult] | None = None,
        on_event: Callable[[JobSpec, dict], None] = lambda job, event: None,
        on_result: Callable[[JobResult], None] = lambda result: None,
    ):
        self.executor = executor
        self.jobs = list(jobs)
        self.parallel = max(1, parallel)
        self.results: dict[Key, JobResult] = dict(done or {})
        self.on_event = on_event
        self.on_result = on_result
        self._running: dict[Key, threading.Thread] = {}
        self._inbox: queue.Queue = queue.Queue()
        self._cancelled = False

    @property
    def keys(self) -> list[Key]:
        return [job.key for job in self.jobs]

    def result(self, backend: str, phase: str) -> JobResult:
        """Block until the job has ended (starting jobs as slots free up)."""
        key = (backend, phase)
        if key not in self.keys and key not in self.results:
            raise KeyError(f"no {backend}/{phase} job in this run")
        while key not in self.results:
            self._start_ready()
            self._pump(timeout=0.5)
        return self.results[key]

    def run_all(self) -> dict[Key, JobResult]:
        for job in self.jobs:
            self.result(*job.key)
        return self.results

    def drain(self, reason: str = "not selected in this session") -> dict[Key, JobResult]:
        """Let running jobs end and start no more; jobs never started are skipped."""
        while self._running:
            self._pump(timeout=0.5)
        for job in self.jobs:
            if job.key not in self.results:
                self.results[job.key] = JobResult(job.backend.name, job.phase, JobState.SKIPPED, reason=reason,
                                                  executor=self.executor.name)
        return self.results

    def cancel(self, join_s: float = 30.0) -> None:
        """Stop every running job and mark the ones not started as cancelled."""
        self._cancelled = True
        self.executor.cancel_all()
        deadline = time.monotonic() + join_s
        while self._running and time.monotonic() < deadline:
            self._pump(timeout=0.2)
        for job in self.jobs:
            if job.key not in self.results and job.key not in self._running:
                self._record(JobResult(job.backend.name, job.phase, JobState.CANCELLED,
                                       reason="cancelled before it started", executor=self.executor.name))

    # -- internals ----------------------------------------------------------------------
    def _start_ready(self) -> None:
        for job in self.jobs:
            if len(self._running) >= self.parallel or any(phases.alone(key[1]) for key in self._running):
                return
            if job.key in self.results or job.key in self._running:
                continue
            if phases.alone(job.phase) and (self._running or self._others_ready(job)):
                continue
            if not self._dependencies_ended(job):
                continue
            failed = self._failed_dependency(job)
            if failed is not None:
                self._record(JobResult(
                    job.backend.name, job.phase, JobState.SKIPPED, executor=self.executor.name,
                    reason=f"not run because {failed.phase} {failed.state.value}: {failed.reason}"))
                continue
            if not self._every_awaited_ended(job):
                continue
            if self._cancelled:
                return
            thread = threading.Thread(target=self._work, args=(job,), name=f"job-{job.label}", daemon=True)
            self._running[job.key] = thread
            thread.start()

    def _dependencies_ended(self, job: JobSpec) -> bool:
        """Whether every planned job of the phases ``job`` reads, of its backend, has ended."""
        return all((job.backend.name, needed) in self.results or (job.backend.name, needed) not in self.keys
                   for needed in phases.depends_on(job.phase))

    def _failed_dependency(self, job: JobSpec) -> JobResult | None:
        """The ended job of a phase ``job`` reads that did not succeed, if any."""
        for needed in phases.depends_on(job.phase):
            before = self.results.get((job.backend.name, needed))
            if before is not None and not before.ok:
                return before
        return None

    def _every_awaited_ended(self, job: JobSpec) -> bool:
        """Whether every planned job (any backend) of the phases ``job`` reads for every backend has ended."""
        awaited = phases.waits_for_every(job.phase)
        return not any(key not in self.results for key in self.keys if key[1] in awaited)

    def _others_ready(self, job: JobSpec) -> bool:
        """Whether a job that shares the machine could start now: it goes before one that runs alone,
        so the run's parallel jobs are not held up behind one-at-a-time timing."""
        for other in self.jobs:
            if other is job or phases.alone(other.phase) or other.key in self.results or other.key in self._running:
                continue
            if self._dependencies_ended(other) and self._every_awaited_ended(other):
                return True
        return False

    def _work(self, job: JobSpec) -> None:
        try:
            result = self.executor.run(job, lambda spec, event: self._inbox.put(("event", spec, event)))
        except Exception as err:  # noqa: BLE001 (an executor bug must not hang the session)
            result = JobResult(job.backend.name, job.phase, JobState.FAILED, executor=self.executor.name,
                               reason=f"the {self.executor.name} executor failed: {type(err).__name__}: {err}")
        self._inbox.put(("done", job, result))

    def _pump(self, timeout: float) -> None:
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            kind, job, payload = item
            if kind == "event":
                self.on_event(job, payload)
            else:
                self._running.pop(job.key, None)
                self._record(payload)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _record(self, result: JobResult) -> None:
        self.results[(result.backend, result.phase)] = result
        self.on_result(result)
