"""Reading a run back: a damaged member is left out with its reason, never silently used."""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness.jobs import JobResult, JobState
from harness.run_store import RunStore
from harness.scoring.gather import gather
from tests.run_fixtures import RunSpec, write_run

BACKENDS = ["tensorflow", "jax", "torch"]


@pytest.fixture
def run(tmp_path):
    write_run(tmp_path, RunSpec(backends=tuple(BACKENDS)))
    return RunStore(tmp_path, "synthetic1")


def read_back(folder: RunStore):
    statuses = {(b, p): JobResult(b, p, JobState.SUCCEEDED) for b in BACKENDS for p in ("train", "predict")}
    return gather(folder, BACKENDS, statuses)


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    for dotted, value in changes.items():
        target = data
        *parents, last = dotted.split("__")
        for key in parents:
            target = target[key]
        target[last] = value
    path.write_text(json.dumps(data))


def test_a_healthy_run_uses_every_member(run):
    results = read_back(run)
    assert set(results.usable) == set(BACKENDS) and results.left_out == {}


def test_a_member_that_saw_other_data_is_left_out_and_named(run):
    for phase in ("train", "predict"):
        edit_json(run.file("torch", f"{phase}.json"), data__fingerprint="0" * 64)
    results = read_back(run)
    assert set(results.usable) == {"tensorflow", "jax"}
    assert "data fingerprint 000000000000 differs from the run's" in results.left_out["torch"]


def test_a_truncated_probability_file_is_reported(run):
    path = run.file("jax", "probs_test.npy")
    path.write_bytes(path.read_bytes()[:100])
    results = read_back(run)
    assert "jax" not in results.usable
    assert "probs_test.npy is truncated or corrupt" in results.left_out["jax"]


def test_probabilities_with_nan_are_reported_as_a_diverged_model(run):
    path = run.file("tensorflow", "probs_test.npy")
    probs = np.load(path)
    probs[0, 0] = np.nan
    np.save(path, probs)
    assert "NaN or infinite values; the model diverged" in read_back(run).left_out["tensorflow"]


def test_a_result_from_another_schema_is_reported(run):
    edit_json(run.file("jax", "predict.json"), schema=7)
    assert "schema version 7 but this harness reads version 1" in read_back(run).left_out["jax"]


def test_train_and_predict_of_different_data_are_reported(run):
    edit_json(run.file("torch", "train.json"), data__fingerprint="f" * 64)
    assert "trained and evaluated on different data" in read_back(run).left_out["torch"]


def test_a_failed_job_leaves_its_member_out_with_the_jobs_reason(run):
    statuses = {(b, p): JobResult(b, p, JobState.SUCCEEDED) for b in BACKENDS for p in ("train", "predict")}
    statuses[("jax", "train")] = JobResult("jax", "train", JobState.FAILED, reason="killed by SIGKILL")
    results = gather(run, BACKENDS, statuses)
    assert results.left_out["jax"] == "jax/train failed: killed by SIGKILL"
    assert results.members["jax"].state == "failed"


def _rewrite(path, change):
    np.save(path, change(np.load(path)))


@pytest.mark.parametrize("change, reason", [
    (lambda p: p[:, :9], "has 9 columns but the data set has 10 classes"),
    (lambda p: np.hstack([p, p[:, :1]]), "has 11 columns but the data set has 10 classes"),
    (lambda p: p - 0.05, "holds negative values"),
    (lambda p: p * 0.5, "has rows that do not sum to 1"),
    (lambda p: (p * 100).astype(np.int64), "holds int64 values, not floating-point probabilities"),
    (lambda p: p.ravel(), "has shape (1500,), not (images, classes)"),
    (lambda p: p[:-1], "has 149 rows but there are 150 labels"),
    (lambda p: np.full_like(p, np.inf), "NaN or infinite values; the model diverged: run train again"),
])
def test_malformed_but_loadable_probabilities_leave_the_member_out_and_the_analysis_runs(run, change, reason):
    """Before: StopIteration or ValueError inside the variants code, and no report."""
    from harness.scoring.analysis import analyse

    _rewrite(run.file("jax", "probs_test.npy"), change)
    results = read_back(run)
    assert reason in results.left_out["jax"]
    analysis = analyse(results)
    assert set(analysis.variants["seed"].members) == {"tensorflow", "torch"}
    assert analysis.members["jax"].state == "failed" and analysis.members["jax"].test is None


def test_labels_outside_the_classes_leave_the_member_out(run):
    _rewrite(run.file("torch", "labels_test.npy"), lambda y: y + 10)
    assert "comes with labels outside 0..9" in read_back(run).left_out["torch"]


def test_an_archive_in_place_of_an_array_is_reported(run):
    path = run.file("jax", "probs_val.npy")
    with open(path, "wb") as handle:
        np.savez(handle, np.load(run.file("jax", "probs_test.npy")))
    assert "probs_val.npy is an archive, not one array" in read_back(run).left_out["jax"]


def test_speed_figures_an_earlier_session_timed_are_kept_when_this_one_plans_no_speed_job(run):
    """``pytest -k test_fidelity`` on a finished run: its report must not lose (or deny) the speed figures."""
    results = read_back(run)  # this session planned train and predict only
    assert sorted(results.speed) == sorted(BACKENDS) and results.speed_problems == {}


def test_a_speed_phase_never_timed_says_why_and_how_to_time_it(tmp_path):
    write_run(tmp_path, RunSpec(backends=tuple(BACKENDS), speed_steps=0))
    folder = RunStore(tmp_path, "synthetic1")
    edit_json(folder.path / "run.json", profile__speed_steps=150)
    results = read_back(folder)
    assert results.speed == {} and set(results.speed_problems) == set(BACKENDS)
    assert "not timed in this session" in results.speed_problems["jax"] and "test_speed" in results.speed_problems["jax"]


def test_a_damaged_earlier_speed_result_is_not_used(run):
    edit_json(run.file("jax", "speed.json"), kind="train")
    results = read_back(run)
    assert "jax" not in results.speed and "cannot be used" in results.speed_problems["jax"]


def test_fidelity_an_earlier_session_checked_is_kept_when_this_one_plans_no_fidelity_job(run):
    """``pytest -k test_speed`` on a finished run: the report keeps its fidelity matrix."""
    results = read_back(run)
    assert sorted(results.fidelity) == sorted(BACKENDS) and results.fidelity_problems == {}
    assert sorted(results.steps) == sorted(BACKENDS)


def test_an_earlier_fidelity_check_of_weights_trained_again_since_is_stale(run):
    np.savez(run.file("jax", "weights.npz"), np.zeros((3, 3), dtype=np.float32))  # jax trained again
    results = read_back(run)
    assert results.fidelity == {}
    assert "ran jax's weights as they were before jax trained again" in results.fidelity_problems["torch"]
    assert "--rerun torch/fidelity" in results.fidelity_problems["torch"]
