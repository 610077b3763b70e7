"""Resume: an earlier job is reused only when every file it promised still validates.

Synthetic runs in the real run-folder layout (``tests.run_fixtures``, with the
checksums a job writes last), then damaged as a hostile user or a full disk
would; the session's reuse decision is read as it would be on ``--run-id`` again.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import options, plan
from harness.errors import ConfigError
from harness.run_store import DERIVED, PREVIOUS, RunStore
from harness.session import BenchmarkRun
from harness.workload import layout
from tests.run_fixtures import RunSpec, write_run

pytestmark = pytest.mark.usefixtures("keras_download_cached")

BACKENDS = ("tensorflow", "jax")
ALL_JOBS = {(b, p) for b in BACKENDS for p in layout.PHASES}
FIDELITY = {(b, "fidelity") for b in BACKENDS}
"""A fidelity job ran every member's weights: any train that runs again runs them all again."""
SERVE = {b: (b, "serve") for b in BACKENDS}
"""A serve job's audit compares with its predict job's outputs: a predict that runs again runs it again."""


def session_on(shared: Path, rerun: str | None = None) -> tuple[BenchmarkRun, list[str]]:
    cfg = options.build_run(shared, backend=",".join(BACKENDS), profile="smoke", executor="local", dataset="keras",
                            shared_dir=shared, run_id="synthetic1", work_dir=shared / "work",
                            reports_dir=shared / "reports", rerun=rerun)
    said: list[str] = []
    return BenchmarkRun(cfg, say=said.append), said


@pytest.fixture
def shared(tmp_path):
    write_run(tmp_path, RunSpec(backends=BACKENDS))
    return tmp_path


def reused(shared: Path, rerun: str | None = None) -> tuple[set, list[str]]:
    run, said = session_on(shared, rerun)
    done = plan.reusable(run.store, [b.name for b in run.config.backends], run.phases, run.config.rerun,
                         profile=run.config.profile, say=said.append)
    return set(done), said


def test_a_sound_finished_run_is_reused_whole(shared):
    assert reused(shared)[0] == ALL_JOBS


@pytest.mark.parametrize("damage, message", [
    ("random-bytes", "probs_test.npy is truncated or corrupt"),
    ("val-deleted", "probs_val.npy is missing"),
    ("same-shape-other-values", "does not match the checksum its job wrote"),
    ("rows-off", "has rows that do not sum to 1"),
])
def test_damaged_probabilities_rerun_the_predict_job_but_keep_its_training(shared, damage, message):
    """Before: every rerun reused the predict job and left the backend out of the ensemble."""
    folder = RunStore(shared, "synthetic1")
    path = folder.file("jax", layout.probs_name("test"))
    if damage == "random-bytes":
        path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
    elif damage == "val-deleted":
        folder.file("jax", layout.probs_name("val")).unlink()
    elif damage == "same-shape-other-values":
        probs = np.load(path)
        np.save(path, probs[::-1])
    else:
        np.save(path, np.load(path) * 2)
    jobs, said = reused(shared)
    assert jobs == ALL_JOBS - {("jax", "predict"), SERVE["jax"]}
    [line] = [s for s in said if s.startswith("not reusing jax/predict")]
    assert message in line and line.endswith("running it again")


def test_overwritten_weights_rerun_train_and_its_predict(shared):
    """Before: train was reused and predict failed on every rerun, with no way out."""
    RunStore(shared, "synthetic1").file("jax", layout.WEIGHTS).write_bytes(b"\0" * 64)
    jobs, said = reused(shared)
    assert jobs == ALL_JOBS - {("jax", "train"), ("jax", "predict"), SERVE["jax"]} - FIDELITY
    assert any("not reusing jax/train" in s and "weights.npz has 64 bytes" in s for s in said)


@pytest.mark.parametrize("rerun, again", [
    ("jax", {("jax", "train"), ("jax", "predict"), ("jax", "speed"), SERVE["jax"]} | FIDELITY),
    ("jax/train", {("jax", "train"), ("jax", "predict"), SERVE["jax"]} | FIDELITY),
    ("jax/predict", {("jax", "predict"), SERVE["jax"]}),
    ("jax/serve", {SERVE["jax"]}),
    ("tensorflow/predict, jax/predict", {("tensorflow", "predict"), ("jax", "predict"), *SERVE.values()}),
    ("all", ALL_JOBS),
])
def test_rerun_forces_chosen_jobs_and_train_brings_its_predict(shared, rerun, again):
    assert reused(shared, rerun)[0] == ALL_JOBS - again


@pytest.mark.parametrize("text, message", [
    ("cntk", "'cntk' is not a backend of this run"),
    ("jax/evaluate", "unknown phase 'evaluate'"),
    ("tf", "'tf' is not a backend of this run"),
])
def test_a_bad_rerun_names_the_form_it_takes(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        session_on(tmp_path, text)
    assert message in str(err.value) and "--rerun takes BACKEND or BACKEND/PHASE" in str(err.value)


def test_an_earlier_sessions_reports_and_ensemble_are_set_aside_before_anything_runs(shared):
    """A stale report must never look current: the session writes them again from the files as they are.
    Until it has, the earlier ones are kept as <name>.previous: a run whose end fails loses no report."""
    run_dir, copies = shared / "runs" / "synthetic1", shared / "reports" / "synthetic1"
    copies.mkdir(parents=True)
    for folder in (run_dir, copies):
        for name in DERIVED:
            (folder / name).write_text("from an earlier session")
    store = RunStore(shared, "synthetic1")
    store.set_aside_derived(copies)
    assert not [p for f in (run_dir, copies) for p in f.iterdir() if p.name in DERIVED]
    assert all((f / (name + PREVIOUS)).read_text() == "from an earlier session" for f in (run_dir, copies)
               for name in DERIVED)
    assert (run_dir / "jax" / layout.WEIGHTS).is_file(), "the jobs' own results are kept"
    store.drop_set_aside(copies)
    assert not [p for f in (run_dir, copies) for p in f.iterdir() if p.name.endswith(PREVIOUS)]


def _as_resumable(shared: Path) -> Path:
    """The synthetic run's run.json as a session with --profile smoke --dataset keras would write it."""
    from harness import profiles

    path = shared / "runs" / "synthetic1" / layout.RUN_JSON
    settings = json.loads(path.read_text())
    settings.update(profile=profiles.get("smoke").to_json(), dataset={"kind": "keras"})
    path.write_text(json.dumps(settings))
    return path.parent


def _write_derived(*folders: Path) -> None:
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for name in DERIVED:
            (folder / name).write_text("from an earlier session")


def test_a_resumed_session_sets_the_earlier_report_aside_before_any_job_runs(shared, monkeypatch):
    """Before: a stale report.html and ensemble.json stayed, still showing a broken backend as fine."""
    from harness.executors.local import LocalExecutor

    monkeypatch.setattr(LocalExecutor, "prepare", lambda self, backends: None)  # no runtimes: no job runs here
    run_dir = _as_resumable(shared)
    copies = shared / "reports" / "synthetic1"
    _write_derived(run_dir, copies)
    session, _ = session_on(shared)
    try:
        session.start()
    finally:
        session.close(cancel=True)
    assert not [p.name for f in (run_dir, copies) for p in f.iterdir() if p.name in DERIVED]


def test_a_refused_resume_keeps_the_earlier_report(shared):
    """A session refused for other settings changes nothing in the run it was refused."""
    run_dir = shared / "runs" / "synthetic1"  # its run.json names another profile than --profile smoke
    _write_derived(run_dir)
    session, _ = session_on(shared)
    with pytest.raises(ConfigError, match="was started with a different profile"):
        try:
            session.start()
        finally:
            session.close(cancel=True)
    assert sorted(p.name for p in run_dir.iterdir() if p.name in DERIVED) == sorted(DERIVED)


def test_a_serving_setting_changed_since_reruns_the_serve_jobs_and_nothing_else(shared):
    """The serve fields only change how the serve phase times: a later session may change them, and
    every serve job timed otherwise runs again, with the fields it differs in named."""
    from harness import profiles

    bound = dict(profiles.get("smoke").to_json(), serve_p99_bound_ms=20.0)
    path = shared / "smoke.json"
    path.write_text(json.dumps(bound))
    cfg = options.build_run(shared, backend=",".join(BACKENDS), profile=str(path), executor="local", dataset="keras",
                            shared_dir=shared, run_id="synthetic1", work_dir=shared / "work",
                            reports_dir=shared / "reports")
    said: list[str] = []
    run = BenchmarkRun(cfg, say=said.append)
    done = plan.reusable(run.store, list(BACKENDS), run.phases, frozenset(), profile=run.config.profile,
                         say=said.append)
    assert set(done) == ALL_JOBS - set(SERVE.values())
    assert [line for line in said if "serve" in line] == [
        ("not reusing tensorflow/serve, jax/serve of run synthetic1: it was timed with other settings than the "
         "profile asks (serve_p99_bound_ms); running them again")]
