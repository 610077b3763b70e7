"""Fault injection: real benchmark sessions that meet real failures, and what survives.

Each test runs ``pytest benchmarks/`` in a separate process (pytester), as a
user would, on a 3-class image folder with a tiny custom profile, with real
TensorFlow and PyTorch jobs. Faults come from ``KBENCH_FAULT`` (see
``harness/workload/faults.py``) or from signals sent to the harness.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.profiles import Profile
from tests.conftest import REPO, work_dir, write_image_folder

pytestmark = pytest.mark.slow
pytest_plugins = ["pytester"]

TINY = Profile(name="tiny", description="fault tests", n_train=24, n_val=6, n_test=12, epochs=2, batch_size=8,
               learning_rate=1e-3, predict_batch_size=4, job_timeout_s=600, seed=5)
BACKENDS = "tensorflow,torch"


PYTEST_AS_AT_A_TERMINAL = (
    "import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.exit(pytest.console_main())")
"""``python -m pytest`` with Ctrl-C live: a shell starts background commands (CI's, say) with SIGINT
ignored, and Python then keeps ignoring it; at a terminal it raises KeyboardInterrupt."""


class Bench:
    """A throwaway benchmark project: the real cases, tiny data, a baseline that any result meets."""

    def __init__(self, pytester: pytest.Pytester, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.pytester = pytester
        self.monkeypatch = monkeypatch
        self.shared = root / "shared"
        self.data = write_image_folder(root / "data")
        self.profile = root / "tiny.json"
        self.profile.write_text(json.dumps(TINY.to_json()))
        baselines = root / "baselines"
        baselines.mkdir()
        entry = {"test_accuracy": 0.0, "tolerance": 0.0}
        (baselines / "tiny.json").write_text(json.dumps({
            "schema": 1, "members": {"tensorflow": entry, "jax": entry, "torch": entry},
            "ensemble": dict(entry, method="seed", max_gap_to_best_member=1.0)}))
        self.baselines = baselines
        pytester.makepyfile(test_backends=(REPO / "benchmarks" / "test_backends.py").read_text())

    def args(self, run_id: str, *extra: str, backends: str = BACKENDS, fidelity: bool = False) -> list[str]:
        """A session's arguments; without ``fidelity``, its fidelity jobs are deselected (``-k``): most
        faults here are about training and what survives it, and the fidelity jobs cost a third of a run."""
        return [*([] if fidelity else ["-k", "not test_fidelity"]), "-p", "no:cacheprovider", "--backend", backends, "--profile", str(self.profile),
                "--dataset", str(self.data), "--shared-dir", str(self.shared), "--work-dir", str(work_dir()),
                "--baselines", str(self.baselines), "--run-id", run_id, "--parallel", "2", "--threads", "1", *extra]

    def run(self, run_id: str, *extra: str, fault: str = "", backends: str = BACKENDS,
            fidelity: bool = False) -> pytest.RunResult:
        if fault:
            self.monkeypatch.setenv("KBENCH_FAULT", fault)
        else:
            self.monkeypatch.delenv("KBENCH_FAULT", raising=False)
        return self.pytester.runpytest_subprocess(*self.args(run_id, *extra, backends=backends, fidelity=fidelity),
                                                 timeout=600)

    def start(self, run_id: str, *extra: str, fault: str = "") -> subprocess.Popen:
        env = dict(os.environ, KBENCH_FAULT=fault) if fault else {k: v for k, v in os.environ.items()
                                                                  if k != "KBENCH_FAULT"}
        return subprocess.Popen([sys.executable, "-c", PYTEST_AS_AT_A_TERMINAL, *self.args(run_id, *extra)],
                                cwd=self.pytester.path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def run_dir(self, run_id: str) -> Path:
        return self.shared / "runs" / run_id

    def status(self, run_id: str, backend: str, phase: str) -> dict:
        return json.loads((self.run_dir(run_id) / backend / f"{phase}.status.json").read_text())

    def analysis(self, run_id: str) -> dict:
        return json.loads((self.run_dir(run_id) / "ensemble.json").read_text())


@pytest.fixture
def bench(pytester, tmp_path, monkeypatch):
    return Bench(pytester, tmp_path, monkeypatch)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.parametrize("fault, reason, log_line", [
    ("crash@epoch-1", "exited with status 1: RuntimeError: injected crash (KBENCH_FAULT)", "Traceback"),
    ("kill@epoch-1", "killed by SIGKILL", None),
])
def test_a_job_that_dies_mid_training_fails_alone_and_the_rest_is_still_ensembled(bench, fault, reason, log_line):
    result = bench.run("r1", fault=f"torch/train:{fault}")
    # torch's train fails and its predict is skipped (fidelity is deselected: Bench.args)
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert reason in out
    if log_line:
        assert "--- last lines of the job's log ---" in out and log_line in out
    assert "[torch/predict] skipped: not run because train failed" in out
    analysis = bench.analysis("r1")
    assert analysis["ensemble"]["members"] == ["tensorflow"]
    assert reason in analysis["left_out"]["torch"]
    assert bench.status("r1", "tensorflow", "predict")["state"] == "succeeded"


def test_a_job_over_its_memory_limit_is_stopped_and_named(bench):
    result = bench.run("r1", "--job-memory-mb", "1800", fault="torch/train:memory-2500@epoch-1")
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    assert "over the 1800 MiB memory limit (--job-memory-mb)" in result.stdout.str()


def test_a_hanging_job_times_out_and_the_others_finish(bench):
    result = bench.run("r1", "--job-timeout", "45", fault="torch/train:hang@epoch-1")
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    assert "torch/train timed-out: timed out after 45 s" in result.stdout.str()


def test_a_truncated_result_file_is_reported_and_never_reused(bench):
    first = bench.run("r1", fault="torch/train:corrupt@end")
    first.assert_outcomes(passed=3, failed=1, skipped=1)
    assert "torch/train failed: exited 0 but its result is unusable" in first.stdout.str()
    assert "truncated or corrupt" in first.stdout.str()
    second = bench.run("r1")
    second.assert_outcomes(passed=5)
    out = second.stdout.str()
    assert "reusing finished jobs of run r1: tensorflow/train, tensorflow/predict" in out
    assert "[torch/train] epoch 1 done" in out


def test_a_harness_killed_mid_run_resumes_without_retraining_finished_backends(bench):
    proc = bench.start("r1", fault="torch/train:hang@epoch-1")
    try:
        wait_for(lambda: _finished(bench, "r1", "tensorflow", "train") and _epoch_done(bench, "r1", "torch"),
                 300, "tensorflow to finish training while torch hangs")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.stdout.close()
    torch_pid = next(json.loads(line)["pid"] for line in
                     (bench.run_dir("r1") / "torch" / "train.events.jsonl").read_text().splitlines()
                     if '"start"' in line)
    wait_for(lambda: not _alive(torch_pid), 20, "the orphaned job to stop")
    resumed = bench.run("r1")
    resumed.assert_outcomes(passed=5)
    out = resumed.stdout.str()
    assert "reusing finished jobs of run r1: tensorflow/train" in out
    assert "[tensorflow/train] epoch 1 done" not in out
    assert "[torch/train] epoch 2 done" in out


def test_ctrl_c_stops_every_job_and_the_run_resumes(bench):
    proc = bench.start("r1", fault="torch/train:hang@epoch-1")
    events = bench.run_dir("r1") / "torch" / "train.events.jsonl"
    try:
        wait_for(lambda: _finished(bench, "r1", "tensorflow", "train") and _epoch_done(bench, "r1", "torch"),
                 300, "tensorflow to finish training while torch hangs")
        torch_pid = next(json.loads(line)["pid"] for line in events.read_text().splitlines() if '"start"' in line)
        os.kill(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED
    assert "Traceback" not in output
    wait_for(lambda: not _alive(torch_pid), 20, "the interrupted job to stop")
    assert bench.status("r1", "torch", "train")["state"] == "cancelled"
    resumed = bench.run("r1")
    resumed.assert_outcomes(passed=5)
    assert "reusing finished jobs of run r1: tensorflow/train" in resumed.stdout.str()


def test_a_second_session_on_a_busy_run_is_refused_and_other_runs_proceed(bench):
    proc = bench.start("busy", fault="torch/train:hang@epoch-1")
    try:
        wait_for(lambda: (bench.run_dir("busy") / ".lock").exists()
                 and (bench.run_dir("busy") / ".lock").read_text().strip(), 120, "the first session to start")
        refused = bench.run("busy")
        assert refused.ret == pytest.ExitCode.USAGE_ERROR
        assert "run busy is in use by pid" in refused.stderr.str() + refused.stdout.str()
        other = bench.run("other")
        other.assert_outcomes(passed=5)
        assert sorted(p.name for p in bench.run_dir("other").iterdir()) == sorted(
            [".lock", "ensemble.json", "model.py", "run.json", "tensorflow", "torch"]
            + _report_files(bench.run_dir("other")))  # model.py: the run's copy of its model file
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=60)
        proc.stdout.close()


def test_a_broken_weight_conversion_fails_that_backends_fidelity_case_with_the_numbers(bench):
    """torch's fidelity job swaps the first conv kernel's rows and columns as it loads any weights.

    Training, prediction and the ensemble are untouched; the fidelity matrix
    finds torch's outputs far from tensorflow's and jax's for the same weights
    (which agree with each other to float32 rounding), names torch, and fails
    its case alone, with the numbers.
    """
    result = bench.run("r1", fault="torch/fidelity:transpose-kernel@load", backends="tensorflow,jax,torch",
                       fidelity=True)
    result.assert_outcomes(passed=9, failed=1)
    out = result.stdout.str()
    assert re.search(r"FAILED \S*test_backends\.py::test_fidelity\[torch\]", out)
    assert "torch's forward pass differs from 2 of 2 other backend(s) (jax, tensorflow)" in out
    section = bench.analysis("r1")["fidelity"]
    assert list(section["named"]) == ["torch"]
    broken = section["cells"]["torch"]["tensorflow"]
    assert broken["max_abs_dp"] > 10 * section["tolerance"]["max_abs_dp"] and not broken["passed"]
    assert f"max |dp| {max(broken['max_abs_dp'], section['cells']['torch']['jax']['max_abs_dp']):.3g}" in out
    healthy = section["cells"]["tensorflow"]["jax"]
    assert healthy["passed"] and healthy["max_abs_dp"] <= 1e-4 and healthy["agreement"] == 1.0
    assert healthy["compared"] == ["jax", "tensorflow", "torch"]
    report = (bench.run_dir("r1") / "report.md").read_text()
    assert "- ❌ torch" in report


def test_no_secret_from_the_environment_lands_in_the_run_folder(bench):
    secret = "AKIA-not-a-real-key-5f3a9c"
    bench.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    bench.run("r1", fidelity=True).assert_outcomes(passed=7)  # every job's files
    for path in bench.run_dir("r1").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def _finished(bench: Bench, run_id: str, backend: str, phase: str) -> bool:
    path = bench.run_dir(run_id) / backend / f"{phase}.status.json"
    return path.exists() and json.loads(path.read_text())["state"] == "succeeded"


def _epoch_done(bench: Bench, run_id: str, backend: str) -> bool:
    events = bench.run_dir(run_id) / backend / "train.events.jsonl"
    return events.exists() and "epoch_end" in events.read_text()


def _report_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith("report")]


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
