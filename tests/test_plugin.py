"""The pytest plugin, run as a user would: in a separate pytest process (pytester).

Option handling and timing need no training; the end-to-end cases at the bottom
run TensorFlow's jobs for real on a tiny image folder (marked slow).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.profiles import Profile
from tests.conftest import REPO, work_dir, write_image_folder

pytest_plugins = ["pytester"]

CASES = """
def test_train(backend_name, kbench):
    pass
"""


@pytest.fixture
def project(pytester):
    pytester.makepyfile(test_cases=CASES)
    return pytester


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_options_are_listed_under_their_own_group_in_help(project):
    result = run(project, "--help")
    text = result.stdout.str()
    assert "Keras multi-backend benchmarks (pytest benchmarks/):" in text
    for flag in ("--backend=NAMES", "--executor=NAME", "--profile=NAME", "--dataset=PATH", "--shared-dir=DIR",
                 "--run-id=ID", "--parallel=N", "--threads=N", "--job-memory-mb=MIB"):
        assert flag in text, flag


@pytest.mark.parametrize("args, message", [
    (["--backend", "tf2"], "unknown backend 'tf2'; choose from tensorflow, jax, torch, theano, cntk, or all"),
    (["--backend", ","], "--backend is empty; choose from"),
    (["--profile", "huge"], "unknown profile 'huge'; choose from smoke, default, standard, full, or give a .json file"),
    (["--executor", "docker"], "unknown executor 'docker'; choose from local, kubernetes"),
    (["--dataset", "/no/such/data"], "data set /no/such/data does not exist; pass --dataset"),
    (["--run-id", "../escape"], "run id '../escape' is not a safe name"),
    (["--parallel", "0"], "--parallel must be at least 1, not 0"),
    (["--job-timeout", "soon"], "--job-timeout must be a number of seconds"),
    (["--record-baseline", "--require-baseline"], "pass only one of them"),
    (["--job-timeout", "nan"], "--job-timeout must be a finite number of seconds above 0, not 'nan'"),
    (["--job-timeout", "inf"], "--job-timeout must be a finite number of seconds above 0, not 'inf'"),
    (["--threads", "1000"], "--threads 1000 is more than 4 per core"),
    (["--run-id", "nightly\n"], "run id 'nightly\\n' is not a safe name"),
])
def test_bad_options_are_a_usage_error_that_names_the_fix(project, args, message):
    result = run(project, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_cases_are_parametrized_by_the_chosen_backends(project):
    result = run(project, "--backend", "torch,jax", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["test_cases.py::test_train[[]jax[]]", "test_cases.py::test_train[[]torch[]]"])


PHASE_CASES = """
import pytest

@pytest.mark.kbench_phases("train")
def test_train(backend_name, kbench):
    print("planned:", ", ".join(kbench.run.phases))

@pytest.mark.kbench_phases("speed")
def test_speed(backend_name, kbench):
    print("planned:", ", ".join(kbench.run.phases))

@pytest.mark.kbench_phases("predict")
def test_renamed_is_still_predict(backend_name, kbench):
    print("planned:", ", ".join(kbench.run.phases))

def test_mine(backend_name, kbench):
    print("planned:", ", ".join(kbench.run.phases))
"""


@pytest.mark.parametrize("select, planned", [
    ([], "train, predict, fidelity, speed, serve"),
    (["-k", "test_train or test_speed"], "train, speed"),
    (["-k", "test_speed"], "speed"),
    (["-k", "test_train"], "train"),
    (["-k", "renamed"], "train, predict"),
])
def test_a_run_plans_only_the_jobs_its_selected_cases_need(pytester, select, planned):
    """``pytest benchmarks/ -k test_speed`` times each backend and trains nothing (what the CI gate
    uses to time its base); a case declares the phases it needs with its marker, whatever its name (what
    they read is planned with them), and a case of the user's own without one plans every phase."""
    pytester.makepyfile(test_cases=PHASE_CASES)
    result = run(pytester, "--backend", "jax", "-s", *select)
    assert result.ret == 0
    assert set(re.findall(r"planned: ([a-z, ]+)", result.stdout.str())) == {planned}


def test_the_plugin_stays_out_of_test_suites_that_do_not_use_it(pytester):
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = run(pytester, "--dataset", "/no/such/data")
    result.assert_outcomes(passed=1)


def test_the_benchmark_json_holds_the_jobs_own_wall_time_and_figures(pytester):
    """Jobs may run in parallel, so a case records the job's own wall time, not the time it waited:
    through ``record_rounds``, the one place that hands pytest-benchmark durations measured elsewhere."""
    pytester.makepyfile(test_timing="""
        from harness.pytest_plugin import record_rounds

        def test_job(benchmark):
            benchmark.extra_info.update(steady_images_per_s=812.0)
            record_rounds(benchmark, [12.5])

        def test_blocks(benchmark):
            record_rounds(benchmark, [0.5, 0.25, 0.75])
    """)
    result = run(pytester, "--benchmark-json", "out.json")
    result.assert_outcomes(passed=2)
    saved = {b["name"]: b for b in json.loads((pytester.path / "out.json").read_text())["benchmarks"]}
    assert saved["test_job"]["stats"]["min"] == saved["test_job"]["stats"]["max"] == 12.5
    assert saved["test_job"]["stats"]["rounds"] == 1
    assert saved["test_job"]["extra_info"] == {"steady_images_per_s": 812.0}
    assert (saved["test_blocks"]["stats"]["min"], saved["test_blocks"]["stats"]["max"]) == (0.25, 0.75)
    assert saved["test_blocks"]["stats"]["rounds"] == 3


def test_benchmark_disable_runs_the_cases_and_records_no_rounds(pytester):
    """``--benchmark-disable`` (or pytest-benchmark turning itself off) leaves the fixture without stats:
    the cases still run and pass, with nothing handed to pytest-benchmark."""
    pytester.makepyfile(test_timing="""
        from harness.pytest_plugin import record_rounds

        def test_job(benchmark):
            record_rounds(benchmark, [12.5])
    """)
    result = run(pytester, "--benchmark-disable")
    result.assert_outcomes(passed=1)


def test_a_pytest_benchmark_without_the_clock_it_needs_fails_loudly():
    """``record_rounds`` relies on a private attribute of the pinned pytest-benchmark; another version
    that lacks it (or records other durations) is an error that names the fix, never wrong times."""
    from types import SimpleNamespace

    from harness.pytest_plugin import record_rounds

    with pytest.raises(RuntimeError, match="has no _timer.*install the pinned version"):
        record_rounds(SimpleNamespace(pedantic=lambda *a, **k: None), [1.0])
    ignores_the_clock = SimpleNamespace(_timer=None, pedantic=lambda *a, **k: None,
                                        stats=SimpleNamespace(stats=SimpleNamespace(data=[9.0])))
    with pytest.raises(RuntimeError, match=r"recorded \[9.0\].*instead of the durations given"):
        record_rounds(ignores_the_clock, [1.0])


REAL = Profile(name="tiny-real", description="every phase, small", n_train=48, n_val=12, n_test=24, epochs=2,
               batch_size=8, learning_rate=1e-3, predict_batch_size=8, job_timeout_s=600, seed=5, speed_steps=20,
               speed_predict_batches=3, serve_seconds=0.5, serve_sweep_seconds=0.1, serve_min_queries=30,
               serve_max_batch=8, serve_rate_trials=2)
"""Every phase, on a tiny image folder: this test is about the session and its pytest-benchmark records;
the smoke profile on the whole CIFAR-10 copy is CI's first stage (``./dev bench --profile smoke``)."""


@pytest.mark.slow
def test_a_real_run_trains_predicts_times_serves_and_a_second_session_reuses_it(pytester, tmp_path):
    """Real TensorFlow jobs, every phase; the same --run-id again reuses them."""
    pytester.makepyfile(test_backends=(REPO / "benchmarks" / "test_backends.py").read_text())
    profile = tmp_path / "tiny-real.json"
    profile.write_text(json.dumps(REAL.to_json()))
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    anything = {"test_accuracy": 0.0, "tolerance": 0.0}  # a baseline any result meets: checked, not judged
    (baselines / "tiny-real.json").write_text(json.dumps({
        "schema": 1, "members": {"tensorflow": anything},
        "ensemble": dict(anything, method="seed", max_gap_to_best_member=1.0)}))
    args = ["--backend", "tensorflow", "--profile", str(profile), "--dataset",
            str(write_image_folder(tmp_path / "data", per_class={"train": 24, "test": 12})), "--threads", "1",
            "--shared-dir", str(tmp_path / "shared"), "--work-dir", str(work_dir()), "--run-id", "e2e",
            "--baselines", str(baselines), "--benchmark-json", "first.json"]
    first = run(pytester, *args)
    first.assert_outcomes(passed=5, skipped=1)  # one backend: no fidelity matrix to check
    first.stdout.fnmatch_lines(["*tensorflow/train*epoch 1 done in*", "*tensorflow/predict*succeeded in*",
                                "*tensorflow/serve*SingleStream: * queries, p90 * ms*"])
    saved = json.loads((pytester.path / "first.json").read_text())["benchmarks"]
    train = next(b for b in saved if b["name"] == "test_train[tensorflow]")
    assert train["extra_info"]["training_job_images_per_s"] > 0
    assert "shared the machine" in train["extra_info"]["training_job_images_per_s_note"]
    assert train["stats"]["min"] == train["extra_info"]["job_wall_s"]
    speed = next(b for b in saved if b["name"] == "test_speed[tensorflow]")
    steps = speed["extra_info"]["speed"]["train_step_ms"]
    assert len(steps) == 20 and speed["stats"]["rounds"] == 2, "one round per 10 of the profile's 20 steps"
    assert speed["stats"]["mean"] == pytest.approx(sum(steps) / 2 / 1000.0, rel=1e-3)
    assert speed["extra_info"]["speed"]["threads"] == 1 and speed["extra_info"]["speed"]["ceiling_gflops"] > 0
    serve = next(b for b in saved if b["name"] == "test_serve[tensorflow]")["extra_info"]["serve"]
    latency = serve["single_stream_latency_ms"]
    assert len(latency) >= 30 and serve["single_stream"]["p90_ms"]["value"] > 0
    assert serve["single_stream"]["validity"]["reasons"][0].endswith("LoadGen's minimum duration is 10 s")
    assert serve["offline"]["best_batch"] in (1, 2, 4, 8) and serve["server"]["trials"]
    assert serve["audit"]["passed"] is True and serve["first_query"]["phase_s"] > 0

    second = run(pytester, *args[:-1], "second.json")
    second.assert_outcomes(passed=5, skipped=1)
    reused = ("*reusing finished jobs of run e2e: tensorflow/train, tensorflow/predict, tensorflow/fidelity, "
              "tensorflow/speed, tensorflow/serve*")
    second.stdout.fnmatch_lines([reused])
    assert "epoch 1 done" not in second.stdout.str()
    assert Path(tmp_path / "shared" / "runs" / "e2e" / "tensorflow" / "weights.npz").exists()


TINY = Profile(name="tiny", description="reuse", n_train=24, n_val=6, n_test=12, epochs=2, batch_size=8,
               learning_rate=1e-3, predict_batch_size=4, job_timeout_s=600, seed=5)
"""A tiny profile (training and prediction only): the resumed run is about which jobs are reused."""


@pytest.mark.slow
def test_a_resumed_run_reruns_jobs_whose_outputs_were_damaged_and_those_asked_for(pytester, tmp_path):
    """Real TensorFlow jobs on a tiny image folder; before: overwritten weights were reused and predict
    failed on every rerun.

    ``--record-baseline`` into a scratch folder: this test is about reuse, not about accuracy.
    """
    pytester.makepyfile(test_backends=(REPO / "benchmarks" / "test_backends.py").read_text())
    profile = tmp_path / "tiny.json"
    profile.write_text(json.dumps(TINY.to_json()))
    args = ["--backend", "tensorflow", "--profile", str(profile), "--dataset",
            str(write_image_folder(tmp_path / "data")), "--threads", "1",
            "--shared-dir", str(tmp_path / "shared"), "--work-dir", str(work_dir()), "--run-id", "resume",
            "--baselines", str(tmp_path / "baselines"), "--record-baseline"]
    run(pytester, *args).assert_outcomes(passed=3, skipped=1)  # one backend: no fidelity matrix
    folder = tmp_path / "shared" / "runs" / "resume" / "tensorflow"
    assert json.loads((folder / "train.json").read_text())["files"]["weights.npz"]["sha256"]
    assert set(json.loads((folder / "predict.json").read_text())["files"]) == {
        "probs_test.npy", "labels_test.npy", "probs_val.npy", "labels_val.npy"}

    (folder / "weights.npz").write_bytes(b"\0" * 100)
    damaged = run(pytester, *args)
    damaged.assert_outcomes(passed=3, skipped=1)
    damaged.stdout.fnmatch_lines(["*not reusing tensorflow/train of run resume: *weights.npz has 100 bytes*",
                                  "*tensorflow/train*epoch 1 done*", "*tensorflow/predict*succeeded in*"])

    asked = run(pytester, *args, "--rerun", "tensorflow/predict")
    asked.assert_outcomes(passed=3, skipped=1)
    asked.stdout.fnmatch_lines(["*reusing finished jobs of run resume: tensorflow/train*",
                                "*tensorflow/predict*succeeded in*"])
    assert "epoch 1 done" not in asked.stdout.str()


def test_a_malformed_baseline_is_a_usage_error_before_any_job(project, tmp_path):
    """Before: it was reported only after every backend had trained."""
    folder = tmp_path / "baselines"
    folder.mkdir()
    (folder / "smoke.json").write_text('{"schema": 1, "members": {"jax": {"test_accuracy": 2}}}')
    result = run(project, "--profile", "smoke", "--baselines", str(folder), "--shared-dir", str(tmp_path / "s"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"baseline file {folder / 'smoke.json'} has no \"ensemble\" object; fix it" in result.stderr.str()
    assert not (tmp_path / "s").exists(), "no run may start"


def test_baselines_given_as_a_file_is_a_usage_error_naming_the_folder(project, tmp_path):
    (tmp_path / "smoke.json").write_text("{}")
    result = run(project, "--baselines", str(tmp_path / "smoke.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "is a file; give the folder that holds one <profile>.json baseline each" in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
