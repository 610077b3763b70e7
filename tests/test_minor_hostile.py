"""Issue 30's minor hostile cases: each one line naming the fix, before any work, or simply fast.

Synthetic run folders (``tests.run_fixtures``) and the option table; nothing trains.
"""
from __future__ import annotations

import json
import time

import pytest

from harness import cli, history, options
from harness.errors import ConfigError
from harness.session import BenchmarkRun
from harness.workload import layout
from tests.run_fixtures import RunSpec, write_run

pytestmark = pytest.mark.usefixtures("keras_download_cached")


def test_a_run_json_whose_backends_is_a_string_is_one_line_naming_it(tmp_path, capsys):
    """Before: `kbench report` took "tensorflow" as ten backends named t, e, n, s..."""
    run_dir = write_run(tmp_path / "shared", RunSpec(backends=("tensorflow", "jax")))
    settings = json.loads((run_dir / layout.RUN_JSON).read_text())
    (run_dir / layout.RUN_JSON).write_text(json.dumps(dict(settings, backends="tensorflow")))
    assert cli.main(["report", str(run_dir), "--reports-dir", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (f"kbench: {run_dir / layout.RUN_JSON}: backends is 'tensorflow', not a list of "
                                       "backend names (edited by hand?); write it as a list, e.g. "
                                       "[\"tensorflow\", \"jax\"]\n")


def test_a_history_file_of_one_huge_line_is_read_in_linear_time(tmp_path):
    """Before: one 50 MB line took 20 s (the tail was re-joined and re-counted block by block)."""
    (tmp_path / "smoke.jsonl").write_bytes(b'{"a": "' + b"x" * 20_000_000 + b'"}\n')
    started = time.perf_counter()
    loaded = history.load(tmp_path, "smoke")
    assert time.perf_counter() - started < 2.0, "quadratic: ~3 s for 20 MB before"
    assert loaded.entries == [] and len(loaded.problems) == 1


def run_config(tmp_path, **values):
    return options.build_run(tmp_path, backend="jax", profile="smoke", executor="local", dataset="keras",
                             shared_dir=tmp_path / "shared", work_dir=tmp_path / "work", **values)


def test_rerun_without_a_run_id_is_refused_naming_the_fix(tmp_path):
    """Before: it silently started a new run."""
    with pytest.raises(ConfigError, match=r"^--rerun runs jobs of an earlier run again: give that run's --run-id"):
        run_config(tmp_path, rerun="jax")


def test_rerun_of_a_run_that_never_existed_is_refused_before_anything(tmp_path):
    """Before: it silently started a new run under that id."""
    run = BenchmarkRun(run_config(tmp_path, rerun="jax", run_id="never-was"), say=lambda line: None)
    with pytest.raises(ConfigError) as err:
        run.start()
    assert str(err.value) == (f"--rerun: there is no run never-was in {tmp_path / 'shared' / 'runs'} to run jobs of "
                              "again; check --run-id and --shared-dir, or drop --rerun to start a new run")
    assert not (tmp_path / "shared" / "runs" / "never-was").exists()


@pytest.mark.parametrize("variable, value, said", [
    ("KBENCH_JIT_COMPILE", "banana", "KBENCH_JIT_COMPILE=banana: use auto, true or false; fix or unset it before the run"),
    ("KBENCH_DATA_FORMAT", "sideways",
     "KBENCH_DATA_FORMAT=sideways: use channels_last or channels_first; fix or unset it before the run"),
])
def test_a_bad_job_setting_in_the_environment_is_one_line_before_any_job(tmp_path, monkeypatch, variable, value,
                                                                         said):
    """Before: each job failed with it, one after the other."""
    monkeypatch.setenv(variable, value)
    run = BenchmarkRun(run_config(tmp_path), say=lambda line: None)
    with pytest.raises(ConfigError) as err:
        run.start()
    assert str(err.value) == said


@pytest.mark.parametrize("make, said", [
    (lambda tmp: (tmp / "loop.py").symlink_to(tmp / "loop.py") or tmp / "loop.py",
     "cannot be followed (a loop of symbolic links?)"),
    (lambda tmp: (tmp / "dir.py").mkdir() or f"{tmp / 'dir.py'}/", "is a folder, not a file"),
    (lambda tmp: "/dev/null", "is not a regular file (a device or a pipe)"),
])
def test_a_model_path_that_is_not_a_file_says_what_it_is(tmp_path, make, said):
    """Before: a symbolic link loop was a pytest INTERNALERROR; /dev/null and dir.py/ "did not exist"."""
    from harness import models

    with pytest.raises(ConfigError) as err:
        models.resolve(str(make(tmp_path)), tmp_path)
    assert said in str(err.value) and "give the path of a .py file defining build(" in str(err.value)


def test_a_garbage_status_file_is_rerun_with_a_line_saying_why(tmp_path):
    """Before: the job ran again without a word."""
    from harness import plan
    from tests.test_resume import ALL_JOBS, BACKENDS, SERVE, session_on

    write_run(tmp_path, RunSpec(backends=BACKENDS))
    status = tmp_path / "runs" / "synthetic1" / "jax" / layout.status_name("predict")
    status.write_text("garbage\n")
    run, said = session_on(tmp_path)
    done = plan.reusable(run.store, list(BACKENDS), run.phases, frozenset(), profile=run.config.profile,
                         say=said.append)
    assert set(done) == ALL_JOBS - {("jax", "predict"), SERVE["jax"]}
    assert said == [(f"not reusing jax/predict of run synthetic1: its status file {status} cannot be read (damaged "
                     "or edited), so how it ended is not known; running it again")]


def test_diverged_weights_rerun_train_not_only_predict(tmp_path):
    """Before: NaN outputs said "the model diverged" but only predict ran again, on the same NaN weights."""
    import numpy as np

    from harness import plan
    from harness.run_store import RunStore
    from tests.test_resume import ALL_JOBS, BACKENDS, FIDELITY, SERVE, session_on

    write_run(tmp_path, RunSpec(backends=BACKENDS))
    store = RunStore(tmp_path, "synthetic1")
    folder = store.backend_dir("jax")
    np.savez(folder / layout.WEIGHTS, np.full((3, 3), np.nan, dtype=np.float32))  # as a diverged job writes them
    train = json.loads((folder / "train.json").read_text())
    train["files"] = layout.file_records(str(folder), [layout.WEIGHTS])
    (folder / "train.json").write_text(json.dumps(train))
    store.write_status(store.read_status("jax", "train"))
    run, said = session_on(tmp_path)
    done = plan.reusable(run.store, list(BACKENDS), run.phases, frozenset(), profile=run.config.profile,
                         say=said.append)
    assert set(done) == ALL_JOBS - {("jax", "train"), ("jax", "predict"), SERVE["jax"]} - FIDELITY
    assert said == [(f"not reusing jax/train of run synthetic1: its weights ({folder / layout.WEIGHTS}) hold NaN "
                     "or infinite values: the model diverged; running it again")]


def test_a_job_that_fills_the_disk_says_so_with_the_resume_hint_and_no_traceback(tmp_path, monkeypatch, capsys):
    """Before: an OSError traceback, without the "run again with --run-id" hint."""
    import errno

    from harness.workload import __main__ as workload_main
    from harness.workload import train
    from tests.test_diverged import KERAS3

    write_run(tmp_path, RunSpec(backends=("jax",)))
    monkeypatch.setattr(workload_main, "_import_keras", lambda backend: KERAS3)

    def full(job, keras):
        job.events.close()  # a job is a process of its own, which closes it on exit; this one is the test's
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train, "run", full)
    code = workload_main.main(["train", "--shared", str(tmp_path), "--run-id", "synthetic1", "--backend", "jax"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[-1] == (layout.ERROR_PREFIX + "the shared folder is full (No space left on device); free "
                                    "some space, then run again with --run-id synthetic1 to resume")


@pytest.mark.parametrize("shape, said", [
    ((1, 1, 3), "the data set's images are 1x1, but the seed's CNN needs at least 10x10"),
    ((4000, 4000, 3), "the data set's images are 4000x4000: the seed's CNN would hold 32,637,059,072 weights"),
])
def test_images_the_seed_cannot_take_are_refused_once_before_any_job(shape, said):
    """Before: every backend's job failed on them, one after the other."""
    from harness import preflight

    with pytest.raises(ConfigError) as err:
        preflight.check_seed_shape(shape)
    assert str(err.value).startswith(said) and "give --model a model file made for them" in str(err.value)
    preflight.check_seed_shape((32, 32, 3))
    preflight.check_seed_shape((10, 224, 3))


def test_ten_thousand_classes_keep_no_confusion_matrix_and_score_without_a_classes_squared_matrix():
    """Before: the analysis ran past 150 s (a 10^8-cell confusion matrix per member, an 800 MB identity for
    the Brier score)."""
    import numpy as np

    from harness.scoring import analysis, metrics

    rng = np.random.default_rng(0)
    probs = rng.random((50, 10_000))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 10_000, 50)
    assert analysis._confusion(probs, labels) is None
    assert analysis._confusion(probs[:, :10] / probs[:, :10].sum(axis=1, keepdims=True), labels % 10) is not None
    small, small_labels = probs[:, :7] / probs[:, :7].sum(axis=1, keepdims=True), labels % 7
    assert metrics.brier_score(small, small_labels) == pytest.approx(
        float(np.mean(np.sum((small - np.eye(7)[small_labels]) ** 2, axis=1))))
