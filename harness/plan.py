"""A run's plan: which jobs it runs, in what order, and which an earlier session already finished.

Read from the phase table (``harness.phases``) and nothing else: the phases a
run plans (the profile's, narrowed to what the selected cases need), one job
per (phase, backend) with the environment its backend needs, and the reuse
rule of a resumed run. Planned once, when a run starts.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness import phases, tuning
from harness.backends import Backend
from harness.jobs import JobResult, JobSpec

Key = tuple[str, str]

SLOWEST_FIRST = ("cntk", "theano", "jax", "torch", "tensorflow")
"""Training cost per image, highest first, as measured on a 2-core CPU. Starting the
slowest jobs first keeps every core busy until the end instead of leaving one long
job running alone."""


def slowest_first(backends: Sequence[Backend]) -> list[Backend]:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    return sorted(backends, key=lambda b: rank.get(b.name, -1))


def jobs(run_id: str, backends: Sequence[Backend], planned: Sequence[str], threads: int, alone_threads: int,
         timeout_s: float, device: Callable[[Backend], str] = lambda backend: "cpu") -> list[JobSpec]:
    """One job per planned phase and backend, phase by phase, the slowest backend first; a job that runs
    alone gets ``alone_threads`` (the same for every backend), the others ``threads``; each computes on
    its backend's ``device`` (the executor's: ``cpu`` or ``gpu``)."""
    found = []
    for phase in planned:
        n = alone_threads if phases.alone(phase) else threads
        for backend in slowest_first(backends):
            found.append(JobSpec(run_id, backend, phase, tuning.job_env(backend, n, device(backend)), timeout_s, n))
    return found


def reusable(store: Any, backends: Sequence[str], planned: Sequence[str], rerun: frozenset[Key],
             profile: Any = None, fingerprint: str | None = None,
             say: Callable[[str], None] = lambda line: None) -> dict[Key, JobResult]:
    """The planned jobs an earlier session of the run finished soundly; the rest (and ``rerun``) run again.

    A job is reused when it is not asked to run again, every job whose outputs
    it reads was reused too (its backend's, and for ``reads_every`` every
    backend's), and the run store finds its result sound (``RunStore.earlier``:
    checksums, data fingerprint, timing settings, the phase's own check).
    Phases are decided in table order, so what a phase reads is decided first.
    A result that cannot be reused is said in one line, with why (once for every job refused for
    the same reason).
    """
    done: dict[Key, JobResult] = {}
    refused: dict[str, list[str]] = {}
    for phase in (p for p in phases.names() if p in planned):
        spec = phases.get(phase)
        for backend in backends:
            key = (backend, phase)
            if key in rerun:
                continue
            if any((backend, r) not in done for r in spec.reads):
                continue
            if any((other, r) not in done for r in spec.reads_every for other in backends):
                continue
            result, problem = store.earlier(backend, phase, fingerprint, profile)
            if problem:
                refused.setdefault(problem, []).append(f"{backend}/{phase}")
            if result is not None:
                done[key] = result
    for problem, jobs in refused.items():  # the same cause (a changed data set) said once
        say(f"not reusing {', '.join(jobs)} of run {store.run_id}: {problem}; running "
            f"{'them' if len(jobs) > 1 else 'it'} again")
    return done
