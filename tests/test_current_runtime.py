"""``--runtime current``: the Keras 3 backends run in the Python that runs pytest, as it is.

The harness's own test environment has no Keras (the harness never imports
one), so it is the "environment without Keras" of a user who runs ``./dev
bench --runtime current``: each backend is skipped with one line naming the
fix. For an environment that has Keras, the slow test stands one in: a fresh
virtual environment that reaches the managed Keras 3 runtime's packages
(Keras, TensorFlow, JAX, PyTorch) and, after them, the test environment's
(pytest, jinja2, ...), as a user's own environment with the harness installed
would; ``pytest benchmarks/`` then runs from that interpreter.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from harness import options
from harness.backends import get
from harness.errors import ConfigError
from harness.executors.base import ExecutorContext
from harness.executors.local import LocalExecutor
from harness.profiles import Profile
from tests.conftest import REPO, TIMING_KNOBS, work_dir, write_image_folder

TINY = Profile(name="tiny", description="current-runtime tests", n_train=24, n_val=6, n_test=12, epochs=2,
               batch_size=8, learning_rate=1e-3, predict_batch_size=4, job_timeout_s=600, seed=5, speed_steps=4,
               speed_predict_batches=2)


def test_runtime_current_is_the_local_executors_and_a_bad_value_names_the_choices(tmp_path):
    assert options.build_run(tmp_path, runtime="current").runtime == "current"
    assert options.build_run(tmp_path).runtime == "managed"
    with pytest.raises(ConfigError, match="--runtime current runs the backends in the Python that runs pytest, "
                                          "on this machine; the kubernetes executor runs its own images"):
        options.build_run(tmp_path, runtime="current", executor="kubernetes")
    with pytest.raises(ConfigError, match="--runtime mine: choose managed or current"):
        options.build_run(tmp_path, runtime="mine")


def test_in_a_python_without_keras_each_keras_3_backend_is_skipped_with_the_fix(tmp_path):
    assert importlib.util.find_spec("keras") is None, "the harness's test environment has no Keras"
    said = []
    executor = LocalExecutor(ExecutorContext(tmp_path, tmp_path, None, said.append, runtime="current"), {})
    executor.check()
    reasons = executor.unavailable([get("tensorflow"), get("jax"), get("torch"), get("theano")])
    assert sorted(reasons) == ["jax", "tensorflow", "torch"], "Theano keeps its managed runtime"
    assert reasons["jax"] == (f"keras with jax cannot be used by {sys.executable}: ModuleNotFoundError: No module "
                              "named 'keras'; install Keras 3 and jax there, or run pytest from a Python that has "
                              "them (pip install -e . in it), or drop --runtime current")
    assert all("\n" not in reason for reason in reasons.values())
    assert executor.runtime(get("theano")).spec.name == "keras2"
    assert executor.facts([get("jax")])["runtime"] == {"mode": "current", "python": sys.executable, "versions": {}}


# -- end to end, in a stand-in for a user's own environment ------------------------------------------
def _purelib(python: Path | str) -> str:
    return subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def user_environment(root: Path, keras_python: Path) -> Path:
    """A stand-in for a user's own environment with Keras 3 and the harness installed: a new virtual
    environment (from the Keras 3 runtime's interpreter) whose site-packages reach that runtime's
    packages first and this test environment's after them. Returns its python."""
    subprocess.run([str(keras_python), "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = Path(_purelib(python))
    (site / "kbench-stand-in.pth").write_text(f"{_purelib(keras_python)}\n{sysconfig.get_paths()['purelib']}\n")
    return python


@pytest.mark.slow
def test_runtime_current_runs_the_jobs_in_the_interpreter_that_runs_pytest(tmp_path, runtime_for):
    keras3 = runtime_for(get("jax"))
    python = user_environment(tmp_path / "user-env", keras3.python)
    asked = "import json, jax, torch, keras; print(json.dumps([keras.__version__, jax.__version__, torch.__version__]))"
    versions = json.loads(subprocess.run([str(python), "-c", asked], capture_output=True, text=True,
                                         check=True).stdout)
    profile = tmp_path / "tiny.json"
    profile.write_text(json.dumps(TINY.to_json()))
    shared = tmp_path / "shared"
    command = [str(python), "-m", "pytest", "benchmarks/", "-p", "no:cacheprovider", "-p", "no:kmock",
               "-p", "no:hypothesispytest", "--runtime", "current", "--backend", "jax,torch",
               "--profile", str(profile), "--dataset", str(write_image_folder(tmp_path / "data")),
               "--shared-dir", str(shared), "--reports-dir", str(tmp_path / "reports"),
               "--work-dir", str(work_dir()), "--baselines", "", "--run-id", "current", "--threads", "1",
               "-k", "not test_serve and not test_fidelity"]  # they run the predict job's code
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO),
                               **{k: os.environ[k] for k in TIMING_KNOBS
                                  if k in os.environ}})  # the suite's short timed sections (conftest)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert (f"runtime: the current Python, {python} ({'.'.join(map(str, sys.version_info[:2]))}"
            in output), output[-3000:]
    assert f"keras {versions[0]}; jax {versions[1]}, torch {versions[2]}" in output
    run = shared / "runs" / "current"
    for backend in ("jax", "torch"):
        for phase in ("train", "predict", "speed"):
            environment = json.loads((run / backend / f"{phase}.json").read_text())["environment"]
            assert environment["executable"] == str(python), f"{backend}/{phase} ran in another interpreter"
            assert environment["keras"] == versions[0] and environment["device"] == "cpu"
    settings = json.loads((run / "run.json").read_text())
    assert settings["runtime"]["mode"] == "current" and settings["runtime"]["python"] == str(python)
    report = (tmp_path / "reports" / "current" / "report.md").read_text().replace("\\_", "_")  # markdown's escapes
    assert f"current: the Python that ran pytest, {python}" in report
    assert f"keras {versions[0]}; jax {versions[1]}, torch {versions[2]}" in report
