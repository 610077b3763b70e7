"""The local executor turns every way a job can end into a result, never a crash.

Jobs here are real child processes running the real workload entry point;
faults are injected with ``KBENCH_FAULT`` before Keras is imported, so these
tests run in seconds with the harness's own interpreter standing in for a
runtime. Training for real is in ``test_workload_backends.py``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from harness import runtimes
from harness.backends import get
from harness.executors.base import ExecutorContext
from harness.executors.local import LocalExecutor
from harness.jobs import JobSpec, JobState
from harness.run_store import RunStore
from harness.workload import layout
from tests.conftest import REPO

RUN = "r1"


def fake_runtime(tmp_path: Path) -> runtimes.Runtime:
    """This interpreter posing as a built runtime (it can run the workload up to importing Keras)."""
    root = tmp_path / "runtime"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").symlink_to(sys.executable)
    (root / runtimes.READY_MARKER).write_text("1")
    return runtimes.Runtime(runtimes.SPECS["keras3"], sys.executable, root)


@pytest.fixture
def executor(tmp_path):
    shared = tmp_path / "shared"
    RunStore(shared, RUN).write_settings({"schema": layout.SCHEMA_VERSION, "profile": {}, "dataset": {}})
    ex = LocalExecutor(ExecutorContext(shared, tmp_path / "work", None, say=lambda m: None),
                       {"job_memory_mb": None})
    ex._runtimes["keras3"] = fake_runtime(tmp_path)
    ex.prepare([])
    yield ex
    ex.cancel_all()


def job(fault: str, timeout_s: float = 60.0, backend: str = "tensorflow") -> JobSpec:
    return JobSpec(RUN, get(backend), "train", {"KBENCH_FAULT": f"{backend}/train:{fault}"}, timeout_s, 1)


def run(executor, spec, events=None):
    return executor.run(spec, lambda j, e: events.append(e) if events is not None else None)


def test_a_crash_is_a_failed_result_with_the_jobs_own_message(executor):
    result = run(executor, job("crash"))
    assert result.state is JobState.FAILED and result.exit_code == 1
    assert result.reason == "exited with status 1: RuntimeError: injected crash (KBENCH_FAULT)"
    assert "Traceback" in result.log_tail


def test_a_bare_exit_status_is_reported_with_a_pointer_to_the_log(executor):
    result = run(executor, job("exit-3"))
    assert (result.state, result.exit_code) == (JobState.FAILED, 3)
    assert result.reason == "exited with status 3; see the log tail"


def test_a_killed_job_says_which_signal_and_the_likely_cause(executor):
    result = run(executor, job("kill"))
    assert result.state is JobState.FAILED and result.exit_code == -signal.SIGKILL
    assert result.reason.startswith("killed by SIGKILL (the kernel's out-of-memory killer")


def test_a_job_that_exits_0_without_its_result_file_has_failed(executor):
    result = run(executor, job("exit-0"))
    assert result.state is JobState.FAILED and result.reason == "exited 0 but wrote no train.json"


def test_a_hanging_job_is_killed_at_its_timeout_with_its_whole_process_group(executor):
    events = []
    started = time.monotonic()
    result = run(executor, job("hang", timeout_s=3), events)
    assert result.state is JobState.TIMED_OUT
    assert "timed out after 3 s" in result.reason
    assert time.monotonic() - started < 20
    pid = next(e["pid"] for e in events if e["event"] == "start")
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_cancel_stops_a_running_job_promptly(executor):
    threading.Timer(2.0, executor.cancel_all).start()
    started = time.monotonic()
    result = run(executor, job("hang"))
    assert result.state is JobState.CANCELLED and "cancelled" in result.reason
    assert time.monotonic() - started < 15


def test_a_job_over_its_memory_limit_is_stopped_and_named(executor):
    executor.settings["job_memory_mb"] = 250
    result = run(executor, job("memory-600"))
    assert result.state is JobState.FAILED
    assert "over the 250 MiB memory limit (--job-memory-mb)" in result.reason
    assert result.details["peak_rss_mb"] > 250


def test_progress_events_reach_the_caller_while_the_job_runs(executor):
    events = []
    run(executor, job("exit-1"), events)
    assert [e["event"] for e in events][:1] == ["start"]
    assert {"v", "t", "event", "backend", "phase"} <= set(events[0])


def test_the_log_of_the_job_is_kept_in_the_run_folder(executor):
    result = run(executor, job("crash"))
    log = Path(result.details["log"])
    assert log.name == "train.log" and log.parent.name == "tensorflow"
    assert "injected crash" in log.read_text()


def test_a_missing_python_36_makes_cntk_unavailable_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(runtimes, "find_python", lambda version: None)
    ex = LocalExecutor(ExecutorContext(tmp_path, tmp_path, None), {})
    reasons = ex.unavailable([get("cntk"), get("tensorflow")])
    assert list(reasons) == ["cntk"]
    assert "it needs CPython 3.6, where CNTK 2.7's wheels live" in reasons["cntk"]


def test_a_missing_openmpi_makes_cntk_unavailable_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(runtimes, "find_python", lambda version: sys.executable)
    monkeypatch.setattr(runtimes, "_find_library_file", lambda names: None)
    reasons = LocalExecutor(ExecutorContext(tmp_path, tmp_path, None), {}).unavailable([get("cntk")])
    assert "apt install libopenmpi3" in reasons["cntk"]


def test_a_runtime_that_fails_to_build_fails_its_jobs_with_the_reason(monkeypatch, tmp_path):
    def broken(runtime, say):
        raise runtimes.RuntimeSetupError("building the keras3 runtime failed at `pip install` (exit 1)")

    monkeypatch.setattr(runtimes, "ensure", broken)
    ex = LocalExecutor(ExecutorContext(tmp_path, tmp_path, None), {})
    ex.prepare([get("jax")])
    result = ex.run(JobSpec(RUN, get("jax"), "train", {}, 60, 1), lambda j, e: None)
    assert result.state is JobState.FAILED and "runtime failed" in result.reason


def test_jobs_die_with_a_harness_that_is_killed(tmp_path):
    """A real harness process runs a hanging job and is SIGKILLed; the job must not live on."""
    shared = tmp_path / "shared"
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(REPO / 'tests')!r})
        from pathlib import Path
        from harness.backends import get
        from harness.executors.base import ExecutorContext
        from harness.jobs import JobSpec
        from harness.executors.local import LocalExecutor
        from harness.run_store import RunStore
        from test_local_executor import fake_runtime
        RunStore(Path({str(shared)!r}), "r1").write_settings({{"schema": 1, "profile": {{}}, "dataset": {{}}}})
        ex = LocalExecutor(ExecutorContext(Path({str(shared)!r}), Path({str(tmp_path / 'work')!r}), None), {{}})
        ex._runtimes["keras3"] = fake_runtime(Path({str(tmp_path)!r}))
        ex.prepare([])
        spec = JobSpec("r1", get("tensorflow"), "train", {{"KBENCH_FAULT": "tensorflow/train:hang"}}, 600, 1)
        ex.run(spec, lambda j, e: print("PID", e["pid"], flush=True) if e["event"] == "start" else None)
    """)
    harness = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = harness.stdout.readline()
        assert line.startswith("PID"), line
        job_pid = int(line.split()[1])
        assert psutil.pid_exists(job_pid)
        os.kill(harness.pid, signal.SIGKILL)
        harness.wait()
        deadline = time.monotonic() + 10
        while psutil.pid_exists(job_pid) and psutil.Process(job_pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the job outlived its harness"
            time.sleep(0.1)
    finally:
        harness.stdout.close()
        if harness.poll() is None:
            harness.kill()
            harness.wait()


def test_parallel_jobs_are_pinned_to_their_own_cores(executor):
    """Two one-thread slots on a machine with two or more cores: each job keeps to its core."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two cores to share out")
    executor.set_concurrency(2, 1)
    seen = []

    def on_event(job_spec, event):
        if event["event"] == "start":
            seen.append(psutil.Process(event["pid"]).cpu_affinity())

    first = executor.run(job("hang", timeout_s=2), on_event)
    assert first.details["cpus"] in ([cpus[0]], [cpus[1]])
    assert seen == [first.details["cpus"]]


def test_jobs_that_do_not_fit_the_cores_are_not_pinned(executor):
    executor.set_concurrency(len(os.sched_getaffinity(0)) + 1, 1)
    result = run(executor, job("exit-1"))
    assert "cpus" not in result.details
