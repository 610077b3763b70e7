"""The phase table: the one home of a run's lifecycle.

A run is a set of jobs, one per (backend, phase). Everything the harness
needs to know about a phase is declared here, once, and read by every part
that plans, orders, reuses or reads jobs:

* the planner (``harness.plan``): which phases a run has (the profile may turn
  one off, the selected benchmark cases may need only some), and what a job
  depends on;
* the scheduler (``harness.scheduler``): what a job waits for, and which jobs
  run alone on the machine;
* ``--rerun`` and resume: what a rerun of a phase invalidates, and when a
  finished result may be reused;
* the run store (``harness.run_store``): the files a finished job promised,
  what to clear before a job runs again, and which profile fields a later
  session may change;
* gathering and the end of a run: which phases make a backend a member of the
  ensemble, which results an earlier session may have left for this one.

Adding a phase costs one entry here, its workload module and its scoring.

The rules are written as what a phase *reads*: a phase that reads another
phase's outputs of the same backend (``reads``) runs after that job succeeded,
and is invalidated when it runs again; a phase that reads a phase's outputs of
*every* backend (``reads_every``) waits until every such job has ended, and is
invalidated when any of them runs again.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import ConfigError
from harness.workload import layout


def _always(profile: Any) -> bool:
    return True


def _no_problem(store: Any, backend: str, result: dict) -> str | None:
    return None


@dataclass(frozen=True)
class Phase:
    """One phase of every backend's work."""

    name: str
    case: str
    """The benchmark case that asks for this phase (its ``kbench_phases`` marker names it); named in
    messages such as "run test_speed, or drop -k, to time it"."""
    reads: tuple[str, ...] = ()
    """Phases of the same backend whose outputs it reads: it runs only after they succeeded, and a
    rerun of any of them reruns it."""
    reads_every: tuple[str, ...] = ()
    """Phases whose outputs it reads for every backend: it starts only once every planned job of
    them has ended, and a rerun of any of them reruns it for every backend."""
    alone: bool = False
    """Its job runs alone: no other job of the run runs beside it, so its timings are the backend's own."""
    member: bool = False
    """Its success is part of what makes a backend a member of the ensemble."""
    promises: Callable[[dict], list[str]] = field(default=lambda result: [])
    """The files besides the result file a finished job leaves (from its result); the job records each
    one's size and SHA-256, and a result is reused only while they all match."""
    leaves: tuple[str, ...] = ()
    """Every file an attempt of the job may leave besides its result, status and events: removed
    before it runs again."""
    fingerprinted: bool = True
    """Its result records the data fingerprint: a result computed on other data is never reused."""
    timing_fields: tuple[str, ...] = ()
    """Profile fields that change only how this phase times a backend, not what any job computes: a
    later session may change them, and a result timed otherwise is run again."""
    timed_with: Callable[[dict], dict] = field(default=lambda result: {})
    """The values of ``timing_fields`` a finished result was timed with, read from the result."""
    enabled: Callable[[Any], bool] = _always
    """Whether a profile plans this phase at all."""
    still_valid: Callable[[Any, str, dict], str | None] = _no_problem
    """``(store, backend, result) -> why not``: a finished result's own staleness check, beyond the
    rules above (a fidelity check that ran weights which have changed since)."""


def _diverged_weights(store: Any, backend: str, result: dict) -> str | None:
    """Trained weights that are not finite: the model diverged, and every phase that reads them would too."""
    return store.weights_problem(backend)


def _stale_fidelity(store: Any, backend: str, result: dict) -> str | None:
    """A fidelity check ran every member's weights: stale once any of them changed (SHA-256)."""
    return store.fidelity_staleness(backend, result)


SERVE_FIELDS = ("serve_seconds", "serve_sweep_seconds", "serve_min_queries", "serve_max_batch", "serve_rate_trials",
                "serve_p99_bound_ms")
"""The profile's serving fields: each changes only how the serve phase times (``settings`` in its result
holds each without the ``serve_`` prefix)."""


def _served_with(result: dict) -> dict:
    settings = result.get("settings") or {}
    return {name: settings.get(name[len("serve_"):]) for name in SERVE_FIELDS}


TABLE: tuple[Phase, ...] = (
    Phase("train", case="test_train", member=True,
          promises=functools.partial(layout.promised_files, "train"),
          leaves=(layout.WEIGHTS,), still_valid=_diverged_weights),
    Phase("predict", case="test_predict", reads=("train",), member=True,
          promises=functools.partial(layout.promised_files, "predict"),
          leaves=tuple(name(split) for split in ("test", "val") for name in (layout.probs_name, layout.labels_name))),
    Phase("fidelity", case="test_fidelity", reads=("train",), reads_every=("train",),
          promises=functools.partial(layout.promised_files, "fidelity"),
          leaves=(layout.FIDELITY_PROBS, layout.STEP_GRADS), still_valid=_stale_fidelity),
    Phase("speed", case="test_speed", alone=True, fingerprinted=False,
          promises=functools.partial(layout.promised_files, "speed"),
          timing_fields=("speed_steps", "speed_predict_batches"),
          timed_with=lambda result: {"speed_steps": (result.get("settings") or {}).get("steps"),
                                     "speed_predict_batches": (result.get("settings") or {}).get("predict_batches")},
          enabled=lambda profile: profile.speed_steps > 0),
    Phase("serve", case="test_serve", reads=("predict",), alone=True,
          promises=functools.partial(layout.promised_files, "serve"),
          leaves=(layout.SERVE_AUDIT,),
          timing_fields=SERVE_FIELDS, timed_with=_served_with,
          enabled=lambda profile: profile.serve_seconds > 0),
)
"""Every phase, in the order a backend's jobs are planned."""


# -- reading the table ------------------------------------------------------------------------
def table() -> tuple[Phase, ...]:
    """The phases (read through this function, so a test may add one)."""
    return TABLE


def names() -> tuple[str, ...]:
    return tuple(p.name for p in table())


def get(name: str) -> Phase:
    for phase in table():
        if phase.name == name:
            return phase
    raise ConfigError(f"unknown phase {name!r}; choose from {', '.join(names())}")


def member_phases() -> tuple[str, ...]:
    """The phases that make a backend a member of the ensemble."""
    return tuple(p.name for p in table() if p.member)


def alone(name: str) -> bool:
    """Whether a job of this phase runs alone on the machine (an unknown phase does not)."""
    return any(p.alone for p in table() if p.name == name)


def timing_fields() -> tuple[str, ...]:
    """Profile fields a later session of a run may change (they only change how a phase times)."""
    return tuple(f for p in table() for f in p.timing_fields)


def with_what_they_read(wanted: Iterable[str]) -> tuple[str, ...]:
    """``wanted`` and every phase they read, however indirectly, in table order."""
    found: set[str] = set()
    todo = list(wanted)
    while todo:
        phase = get(todo.pop())
        if phase.name not in found:
            found.add(phase.name)
            todo += [*phase.reads, *phase.reads_every]
    return tuple(p.name for p in table() if p.name in found)


def planned(profile: Any, needed: Sequence[str] | None = None) -> tuple[str, ...]:
    """The phases a run plans: those the profile enables, and of them only those the selected cases
    need (with what they read); ``needed`` None: every enabled phase."""
    wanted = names() if needed is None else with_what_they_read(needed)
    return tuple(p.name for p in table() if p.name in wanted and p.enabled(profile))


def invalidated_by(name: str) -> tuple[set[str], set[str]]:
    """What a new result of ``name`` makes stale: (phases of the same backend, phases of every backend).

    Read from ``reads`` and ``reads_every``, transitively: a phase that reads a stale phase is stale too.
    """
    same, every = {name}, set()
    changed = True
    while changed:
        changed = False
        for phase in table():
            if phase.name not in same and any(r in same for r in phase.reads):
                same.add(phase.name)
                changed = True
            if phase.name not in every and any(r in same | every for r in phase.reads_every):
                every.add(phase.name)
                changed = True
    return same, every


def depends_on(name: str) -> tuple[str, ...]:
    """Phases of the same backend that must have succeeded before a job of ``name`` runs."""
    return get(name).reads


def waits_for_every(name: str) -> tuple[str, ...]:
    """Phases every planned job of which (any backend) must have ended before a job of ``name`` starts."""
    return get(name).reads_every


def parse_rerun(text: str | None, backends: Sequence[str]) -> frozenset[tuple[str, str]]:
    """``--rerun BACKEND[/PHASE],...`` as (backend, phase) pairs, with what each rerun invalidates.

    A backend alone means every phase; ``all`` means every chosen backend. A
    rerun of a phase also reruns that backend's phases that read it (a predict
    on new weights would otherwise be reused with outputs of the old ones); a
    phase that reads *every* backend's outputs is rerun by the run's reuse rule
    (``harness.plan.reusable``), which sees every backend's reruns at once.
    """
    if not text or not text.strip():
        return frozenset()
    usage = (f"--rerun takes BACKEND or BACKEND/PHASE (phase: {', '.join(names())}), comma-separated, or all; "
             f"backends of this run: {', '.join(backends)}")
    jobs: set[tuple[str, str]] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, phase = item.partition("/")
        name, phase = name.strip().lower(), phase.strip().lower()
        if name != "all" and name not in backends:
            raise ConfigError(f"--rerun {item!r}: {name!r} is not a backend of this run; {usage}")
        if phase not in ("", *names()):
            raise ConfigError(f"--rerun {item!r}: unknown phase {phase!r}; {usage}")
        chosen = names() if phase == "" else tuple(p for p in names() if p in invalidated_by(phase)[0])
        for backend in (backends if name == "all" else [name]):
            jobs.update((backend, p) for p in chosen)
    return frozenset(jobs)
