"""The small interface every executor offers the rest of the harness.

An executor turns a ``JobSpec`` (train or predict one backend of one run) into
a ``JobResult`` (both in ``harness.jobs``, which the run folder and the
scoring read without importing any executor). It never raises for a job that failed: a crash, a kill, a
timeout or a cancellation is a result with a state and a one-line reason. It
raises ``ExecutorError`` only when it cannot run jobs at all.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.backends import Backend
from harness.jobs import JobResult, JobSpec, JobState
from harness.option_spec import Option

__all__ = ["EventSink", "Executor", "ExecutorContext", "JobResult", "JobSpec", "JobState", "Option"]
"""The job types stay importable from here for callers written before they moved."""

EventSink = Callable[["JobSpec", dict], None]
"""Receives each progress event (one parsed JSON line) a job emits, as it comes."""


@dataclass(frozen=True)
class ExecutorContext:
    """What every executor is told, whatever its kind."""

    shared_dir: Path
    """The shared folder as this (harness) machine sees it."""
    work_dir: Path
    """Where the harness keeps runtimes and other machine-local state."""
    max_parallel: int | None
    """Jobs to run at once; ``None`` lets the executor choose."""
    say: Callable[[str], None] = print
    """Prints one line to the user (the terminal in a pytest session)."""
    runtime: str = "managed"
    """``--runtime``: ``current`` runs the Keras 3 backends in the harness's own Python (local only)."""


class Executor(ABC):
    """Runs jobs somewhere. Subclasses set ``name`` and are found by it (``harness.executors``);
    their options are declared apart, in a light module the registry names."""

    name: ClassVar[str]

    def __init__(self, context: ExecutorContext, settings: Mapping[str, Any]):
        self.context = context
        self.settings = dict(settings)
        self.stop_requested = threading.Event()

    # -- before anything runs -------------------------------------------------
    def unavailable(self, backends: Sequence[Backend]) -> dict[str, str]:
        """Backends this executor cannot run, each with a one-sentence reason."""
        return {}

    def check(self) -> None:
        """Raise ``ExecutorError`` now if no job could run (fail before submitting)."""

    def stage_dataset(self, dataset: Mapping[str, Any]) -> dict:
        """Make the data set reachable from inside a job; return its run.json spec.

        ``dataset`` is ``{"kind": "keras"}`` or ``{"kind": "path", "path": <absolute
        path on this machine>}``. An executor whose jobs cannot see this machine's
        files copies the data set into the shared folder and returns
        ``{"kind": "shared", "path": <path relative to the shared folder>}``.
        """
        return dict(dataset)

    def prepare(self, backends: Sequence[Backend]) -> None:
        """Get ready to run these backends (build environments, pull images...)."""

    def default_parallel(self, n_jobs: int) -> int:
        """How many jobs to run at once when the user did not say."""
        return n_jobs

    def threads_per_job(self, parallel: int) -> int:
        """CPU threads each job may use when ``parallel`` jobs run at once."""
        return 1

    def set_concurrency(self, parallel: int, threads: int) -> None:
        """Told once before jobs run: at most ``parallel`` at once, ``threads`` each."""

    def device(self, backend: Backend) -> str:
        """Where ``backend``'s jobs compute: ``cpu`` or ``gpu`` (``harness.tuning.job_env`` follows it)."""
        return "cpu"

    def facts(self, backends: Sequence[Backend]) -> dict[str, Any]:
        """What run.json records of where ``backends``' jobs ran (device, GPUs, runtime), beside the
        executor's name."""
        return {}

    # -- running ----------------------------------------------------------------
    @abstractmethod
    def run(self, job: JobSpec, on_event: EventSink) -> JobResult:
        """Run one job to its end and say how it ended. Blocks; thread-safe.

        Must return promptly with state CANCELLED once ``cancel_all`` is called.
        """

    def cancel_all(self) -> None:
        """Stop every job this executor started (Ctrl-C, a crashing session)."""
        self.stop_requested.set()

    def close(self) -> None:
        """Release clients and other resources."""
