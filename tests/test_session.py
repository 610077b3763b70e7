"""A whole benchmark session driven from Python, without pytest: ``harness.session`` and ``harness.verdicts``.

Real jobs (JAX, the Keras 3 runtime) on a tiny real image folder, through the
local executor: what a notebook or a script would do.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import options
from harness.session import BenchmarkSession
from harness.verdicts import PASSED, SKIPPED, judge
from harness.workload import layout
from tests.conftest import work_dir, write_image_folder

pytestmark = pytest.mark.slow

TINY = {"name": "tiny", "description": "tests", "n_train": 24, "n_val": 6, "n_test": 12, "epochs": 2,
        "batch_size": 8, "learning_rate": 1e-3, "predict_batch_size": 4, "job_timeout_s": 900, "seed": 3,
        "speed_steps": 12, "speed_predict_batches": 3}


def test_a_whole_session_runs_from_python_to_its_report(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KBENCH_CEILING_SECONDS", "0.2")  # the ceiling's plumbing, not its value
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    configs = options.build_runs({
        "backend": "jax", "profile": str(tmp_path / "tiny.json"), "dataset": str(write_image_folder(tmp_path / "d")),
        "shared_dir": tmp_path / "shared", "work_dir": work_dir(), "reports_dir": tmp_path / "reports",
        "baselines": "", "run_id": "from-python", "threads": "1"}, tmp_path, tmp_path)
    said: list[str] = []
    session = BenchmarkSession(configs, say=said.append)
    (run,) = session.run_all()
    if "jax" in run.skipped:
        pytest.skip(run.skipped["jax"])
    assert {judge(run, case, "jax").outcome for case in ("train", "speed")} == {PASSED}
    fidelity = judge(run, "fidelity", "jax")  # one backend: nothing to compare it with
    assert fidelity.outcome == SKIPPED and fidelity.message.startswith("no fidelity matrix in this run")
    predict = judge(run, "predict", "jax")
    assert predict.outcome == SKIPPED and "no baseline" in predict.message  # '' checks nothing
    assert predict.figures["test_accuracy"] is not None and predict.rounds and predict.rounds[0] > 0
    assert judge(run, "ensemble").outcome == SKIPPED
    assert [p.name for p in run.end.report_paths] == [layout.REPORT_HTML, layout.REPORT_MD] * 2
    assert run.store.read_analysis().members["jax"].ok
    assert any(line.startswith("run from-python: ") for line in said)
