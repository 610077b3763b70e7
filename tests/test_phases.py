"""The phase table is the one home of a run's lifecycle: a new phase is one entry, nothing else.

A made-up ``audit`` phase (it reads its backend's training and every
backend's predictions) is added to the table inside the test; the planner,
the scheduler, resume's reuse rule, ``--rerun`` and the run store handle it
with no other edit. The executor is an in-process stand-in (the scheduler is
pure coordination); the run folders are real, written as jobs write them.
"""
from __future__ import annotations

import dataclasses

import pytest

from harness import phases, plan, profiles
from harness.backends import get
from harness.errors import ConfigError
from harness.jobs import JobResult, JobState
from harness.run_store import RunStore
from harness.scheduler import Scheduler
from harness.workload import layout
from tests.run_fixtures import RunSpec, write_run
from tests.test_scheduler import ScriptedExecutor

AUDIT = phases.Phase("audit", case="test_audit", reads=("train",), reads_every=("predict",),
                     promises=lambda result: ["audit.npz"], leaves=("audit.npz",))
BACKENDS = ("tensorflow", "jax")
SMOKE = profiles.get("smoke")


@pytest.fixture
def with_audit(monkeypatch):
    monkeypatch.setattr(phases, "TABLE", (*phases.TABLE, AUDIT))


def test_the_table_names_the_phases_a_job_can_run():
    """The workload's own list (its command line) and the harness's table agree."""
    assert phases.names() == layout.PHASES
    assert phases.member_phases() == ("train", "predict")
    assert [p.name for p in phases.TABLE if p.alone] == ["speed", "serve"]


def test_what_a_case_needs_is_planned_with_what_it_reads(with_audit):
    assert phases.planned(SMOKE, ["audit"]) == ("train", "predict", "audit")
    assert phases.planned(SMOKE, ["speed"]) == ("speed",)
    assert phases.planned(dataclasses.replace(SMOKE, speed_steps=0)) == (
        "train", "predict", "fidelity", "serve", "audit")
    assert phases.planned(dataclasses.replace(SMOKE, serve_seconds=0.0), ["serve"]) == ("train", "predict")
    with pytest.raises(ConfigError, match="unknown phase 'audti'; choose from train, predict, fidelity, speed, serve, "
                                          "audit"):
        phases.planned(SMOKE, ["audti"])


def test_the_scheduler_runs_a_new_phase_after_what_it_reads(with_audit):
    jobs = plan.jobs("r", [get(b) for b in BACKENDS], ("train", "predict", "audit"), 1, 1, 60)
    executor = ScriptedExecutor()
    Scheduler(executor, jobs, parallel=4).run_all()
    order = executor.order
    first_audit = min(order.index(f"{b}/audit") for b in BACKENDS)
    assert all(order.index(f"{b}/predict") < first_audit for b in BACKENDS), order


def test_a_failed_train_skips_the_new_phase_of_its_backend(with_audit):
    jobs = plan.jobs("r", [get(b) for b in BACKENDS], ("train", "predict", "audit"), 1, 1, 60)
    results = Scheduler(ScriptedExecutor({"jax/train": JobState.FAILED}), jobs, parallel=2).run_all()
    assert results[("jax", "audit")].state is JobState.SKIPPED
    assert results[("jax", "audit")].reason == "not run because train failed: x"
    assert results[("tensorflow", "audit")].ok


def test_rerun_of_what_it_reads_reruns_the_new_phase(with_audit):
    assert ("jax", "audit") in phases.parse_rerun("jax/train", list(BACKENDS))
    assert phases.parse_rerun("jax/audit", list(BACKENDS)) == {("jax", "audit")}
    assert phases.invalidated_by("predict") == ({"predict", "serve"}, {"audit"})


def _finish_audits(store: RunStore) -> None:
    for backend in BACKENDS:
        folder = store.backend_dir(backend)
        (folder / "audit.npz").write_bytes(b"audited")
        result = {"schema": layout.SCHEMA_VERSION, "kind": "audit", "backend": backend,
                  "files": layout.file_records(str(folder), ["audit.npz"])}
        layout.atomic_write_json(str(folder / layout.result_name("audit")), result)
        store.write_status(JobResult(backend, "audit", JobState.SUCCEEDED))


def test_resume_reuses_a_sound_new_phase_and_reruns_it_when_what_it_reads_reruns(with_audit, tmp_path):
    store = RunStore.at(write_run(tmp_path, RunSpec(backends=BACKENDS)))
    _finish_audits(store)
    planned = ("train", "predict", "audit")
    assert set(plan.reusable(store, BACKENDS, planned, frozenset(), SMOKE)) == {
        (b, p) for b in BACKENDS for p in planned}
    # any backend's predict running again makes every audit stale (it reads every backend's)
    again = plan.reusable(store, BACKENDS, planned, phases.parse_rerun("jax/predict", list(BACKENDS)), SMOKE)
    assert not {k for k in again if k[1] == "audit"}
    # a promised file changed since: that audit runs again, with the reason said
    (store.backend_dir("jax") / "audit.npz").write_bytes(b"AUDITED")  # same size, other bytes
    said: list[str] = []
    done = plan.reusable(store, BACKENDS, planned, frozenset(), SMOKE, say=said.append)
    assert ("jax", "audit") not in done and ("tensorflow", "audit") in done
    assert any(line.startswith("not reusing jax/audit") and "checksum" in line for line in said)


def test_clearing_a_phase_clears_the_new_phase_that_reads_it(with_audit, tmp_path):
    store = RunStore.at(write_run(tmp_path, RunSpec(backends=BACKENDS)))
    _finish_audits(store)
    store.clear_phase("jax", "train")
    left = {p.name for p in store.backend_dir("jax").iterdir()}
    assert not left & {"audit.json", "audit.status.json", "audit.npz", "predict.json", layout.WEIGHTS}
    assert "audit.json" in {p.name for p in store.backend_dir("tensorflow").iterdir()}
