"""A job and how it ended: what the session plans, executors run and the run folder keeps.

One job is one phase (train or predict) of one backend of one run. These types
are read by the run folder (``<backend>/<phase>.status.json``), the scoring
and the report as well as by the executors, so they live apart from the
executors: nothing that reads a result needs to import the code that runs one.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.backends import Backend


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
    result_file: dict[str, Any] | None = None
    """Size and SHA-256 of the job's result file when it ended (``{"bytes": .., "sha256": ..}``), recorded by
    the run store with the status: the result is reused only while it still matches. None for a job that
    wrote none, and in status files of harnesses before it."""

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


def reasons_once(reasons: Mapping[str, str]) -> str:
    """Why several backends ended as they did, each distinct reason said once.

    ``{"jax": "no data", "torch": "no data", "cntk": "no MPI"}`` reads
    ``jax, torch: no data; cntk: no MPI``: when every backend fails for the
    same cause, the user reads it once, not once per backend.
    """
    by_reason: dict[str, list[str]] = {}
    for name, reason in reasons.items():
        by_reason.setdefault(reason, []).append(name)
    return "; ".join(f"{', '.join(names)}: {reason}" for reason, names in by_reason.items())
