"""What every executor shares: the job it is given, the result it gives back,
and the small interface the rest of the harness drives.

An executor turns a ``JobSpec`` (train or predict one backend of one run) into
a ``JobResult``. It never raises for a job that failed: a crash, a kill, a
timeout or a cancellation is a result with a state and a one-line reason. It
raises ``ExecutorError`` only when it cannot run jobs at all.
"""
from __future__ import annotations

import enum
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.backends import Backend

EventSink = Callable[["JobSpec", dict], None]
"""Receives each progress event (one parsed JSON line) a job emits, as it comes."""


class JobState(str, enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed-out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    """Never started: a dependency failed or the backend cannot run here."""


@dataclass(frozen=True)
class JobSpec:
    """One job: one phase of one backend of one run."""

    run_id: str
    backend: Backend
    phase: str
    """``train`` or ``predict``."""
    env: Mapping[str, str]
    """Environment the workload needs (``KERAS_BACKEND``, thread settings...)."""
    timeout_s: float
    threads: int
    """CPU threads this job may use; executors size their requests from it."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.backend.name, self.phase)

    @property
    def label(self) -> str:
        return f"{self.backend.name}/{self.phase}"

    def workload_args(self, shared_root: str) -> list[str]:
        """Arguments after ``python``: the same command on every executor."""
        return [
            "-m", "harness.workload", self.phase,
            "--shared", shared_root,
            "--run-id", self.run_id,
            "--backend", self.backend.name,
        ]


@dataclass
class JobResult:
    """How a job ended. Written to ``<backend>/<phase>.status.json``."""

    backend: str
    phase: str
    state: JobState
    reason: str = ""
    """One line saying why a job did not succeed (empty when it did)."""
    exit_code: int | None = None
    log_tail: str = ""
    wall_s: float | None = None
    """Seconds from submission to the end, measured by the executor."""
    started_at: float | None = None
    """Wall-clock (epoch seconds) submission time."""
    finished_at: float | None = None
    executor: str = ""
    reused: bool = False
    """True when the result comes from an earlier session of the same run."""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state is JobState.SUCCEEDED

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.phase}"

    def to_json(self) -> dict:
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobResult:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["state"] = JobState(values["state"])
        return cls(**values)


@dataclass(frozen=True)
class Option:
    """A command-line option an executor needs, declared without pytest.

    The pytest plugin adds every registered executor's options to its group,
    so supporting a new executor never changes the plugin.
    """

    flag: str
    help: str
    default: Any = None
    parse: Callable[[str], Any] = str
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


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


class Executor(ABC):
    """Runs jobs somewhere. Subclasses set ``name`` and are found by it."""

    name: ClassVar[str]
    options: ClassVar[Sequence[Option]] = ()

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
