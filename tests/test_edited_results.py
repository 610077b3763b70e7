"""Hand-edited result files: never reused on resume, never averaged into an ensemble.

Synthetic finished runs in the real layout (``tests.run_fixtures``: each status
records its result file's checksum, as the harness does when a job ends),
then edited as a user would with a text editor. Issue 30, breaks 1 and 2.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import cli, plan, run_end
from harness.run_store import RunStore, values
from harness.workload import layout
from tests.run_fixtures import RunSpec, write_run
from tests.test_resume import ALL_JOBS, BACKENDS, FIDELITY, SERVE, session_on

pytestmark = pytest.mark.usefixtures("keras_download_cached")

TRAIN_AGAIN = {("tensorflow", "train"), ("tensorflow", "predict"), SERVE["tensorflow"]} | FIDELITY
"""What runs again when tensorflow's training cannot be reused: its predict and serve, every fidelity check."""


@pytest.fixture
def shared(tmp_path):
    write_run(tmp_path, RunSpec(backends=BACKENDS))
    return tmp_path


def edit_train(shared: Path, value, field: str = "train_accuracy_inference") -> Path:
    path = RunStore(shared, "synthetic1").file("tensorflow", layout.result_name("train"))
    train = json.loads(path.read_text())
    train["final"][field] = value
    path.write_text(json.dumps(train))
    return path


def reused(shared: Path) -> tuple[set, list[str]]:
    run, said = session_on(shared)
    done = plan.reusable(run.store, list(BACKENDS), run.phases, run.config.rerun, profile=run.config.profile,
                         say=said.append)
    return set(done), said


@pytest.mark.parametrize("value", [7.0, "abc", 0.99])
def test_a_hand_edited_train_json_is_not_reused_and_the_job_runs_again(shared, value):
    """Before: a training accuracy of 7.0 (or "abc") was reused silently, and the report showed 700.0%."""
    path = edit_train(shared, value)
    jobs, said = reused(shared)
    assert jobs == ALL_JOBS - TRAIN_AGAIN
    [line] = [s for s in said if s.startswith("not reusing tensorflow/train")]
    assert line.startswith(f"not reusing tensorflow/train of run synthetic1: {path} ")
    assert "its job wrote" in line and line.endswith("; running it again")


def test_a_status_from_before_result_checksums_is_not_reused_and_says_so(shared):
    """A run folder of an older harness: its statuses record no checksum of the result file, so it reruns."""
    path = RunStore(shared, "synthetic1").file("jax", layout.status_name("predict"))
    status = json.loads(path.read_text())
    del status["result_file"]
    path.write_text(json.dumps(status))
    jobs, said = reused(shared)
    assert jobs == ALL_JOBS - {("jax", "predict"), SERVE["jax"]}
    [line] = [s for s in said if s.startswith("not reusing jax/predict")]
    assert "its status records no checksum of predict.json (written by an older harness, or edited)" in line


@pytest.mark.parametrize("value, said", [
    (7.0, "final.train_accuracy_inference is 7.0, not a number from 0 to 1"),
    ("abc", "final.train_accuracy_inference is 'abc', not a number from 0 to 1"),
])
def test_a_report_of_a_hand_edited_run_leaves_the_member_out_with_the_field_named(shared, value, said):
    """Before: 7.0 gave seed weights tensorflow 0.959 / jax 0.041; "abc" failed the report with a ValueError."""
    path = edit_train(shared, value)
    analysis = run_end.reanalyse(RunStore(shared, "synthetic1"))
    reason = analysis.members["tensorflow"].reason
    assert reason == (f"{path} cannot be used: {said} (edited by hand?); run the job again "
                      "(--rerun tensorflow/train)")
    assert list(analysis.variants["seed"].members) == ["jax"]


def test_kbench_report_of_a_hand_edited_run_writes_the_report_without_it(shared, capsys):
    """Before: `kbench report` failed with "could not convert string to float: 'abc'" and suggested itself."""
    edit_train(shared, "abc")
    assert cli.main(["report", str(shared / "runs" / "synthetic1"), "--baselines", "",
                     "--reports-dir", str(shared / "out")]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    report = (shared / "runs" / "synthetic1" / "report.html").read_text()
    assert "final.train_accuracy_inference is &#39;abc&#39;, not a number from 0 to 1" in report


@pytest.mark.parametrize("phase, result, problem", [
    ("train", {"final": {"train_accuracy": 1.5}}, "final.train_accuracy is 1.5, not a number from 0 to 1"),
    ("train", {"final": {"train_loss_inference": -1}}, "final.train_loss_inference is -1, not a number from 0 to 1e15"),
    ("train", {"final": None}, "final is None, not a JSON object"),
    ("train", {"final": "abc"}, "final is 'abc', not a JSON object"),
    ("train", {"final": {"test_accuracy": True}}, "final.test_accuracy is True, not a number from 0 to 1"),
    ("train", {"history": [{"epoch": 1}, {"accuracy": "x"}]}, "history[1].accuracy is 'x', not a number from 0 to 1"),
    ("train", {"timing": {"epoch_seconds": [1.0, -2]}},
     "timing.epoch_seconds is [1.0, -2], not a list of numbers from 0 to 1e15"),
    ("train", {"final": {"val_loss": float("nan")}}, "final.val_loss is not a finite number"),
    ("predict", {"test": {"accuracy": 2}}, "test.accuracy is 2, not a number from 0 to 1"),
    ("predict", {"timing": {"p90_ms": float("inf")}}, "timing.p90_ms is not a finite number"),
    ("speed", {"train": {"step_s": [0.1, "slow"]}},
     "train.step_s is [0.1, 'slow'], not a list of numbers from 0 to 1e15"),
    ("train", {"final": {"val_accuracy": None, "train_accuracy": 0.5}, "history": []}, None),
])
def test_each_value_the_harness_reads_is_checked_for_type_and_range(phase, result, problem):
    assert values.problem(phase, result) == problem
