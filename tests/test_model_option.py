"""``--model`` through the real plugin, in a separate pytest process (pytester), as a user runs it.

The benchmark cases are the project's own (``benchmarks/test_backends.py``).
Bad model files must stop the session before any job starts, in one line
naming the file and the problem, with a non-zero exit and an earlier run's
files untouched. The checks that need Keras (does ``build`` return a Keras
model with one output per class?) run the real Keras 3 runtime (slow).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.workload import layout
from tests.conftest import REPO, work_dir, write_image_folder
from tests.run_fixtures import RunSpec, write_run
from tests.test_workload_backends import TINY

pytest_plugins = ["pytester"]

BUILD = "def build(keras, input_shape, n_classes):\n"
BAD_FILES = {
    "fails_to_import": ("import not_a_module_anywhere\n\n" + BUILD + "    return None\n",
                        "fails to import: ModuleNotFoundError: No module named 'not_a_module_anywhere'"),
    "not_a_model": (BUILD + "    return 'a model, honestly'\n",
                    "build() returned str, not a Keras model"),
    "seven_classes": (BUILD + "    inputs = keras.layers.Input(shape=tuple(input_shape))\n"
                      "    x = keras.layers.Flatten()(inputs)\n"
                      "    return keras.models.Model(inputs, keras.layers.Dense(7, activation='softmax')(x))\n",
                      "the model's output has shape (None, 7) but the data set has 3 classes"),
    "no_build": ("def built(keras, input_shape, n_classes):\n    return None\n",
                 "has no build function"),
}
KERAS3_ONLY = (BUILD + "    inputs = keras.layers.Input(shape=tuple(input_shape))\n"
               "    x = keras.layers.GroupNormalization(groups=1)(inputs)\n"
               "    x = keras.layers.GlobalAveragePooling2D()(x)\n"
               "    return keras.models.Model(inputs, keras.layers.Dense(n_classes, activation='softmax')(x))\n")


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makepyfile(test_cases=(REPO / "benchmarks" / "test_backends.py").read_text())
    (tmp_path / "tiny.json").write_text(json.dumps(TINY.to_json()))
    return {"pytester": pytester, "root": tmp_path}


def run(project: dict, *args: str) -> pytest.RunResult:
    root = project["root"]
    data = root / "data"
    if not data.exists():
        write_image_folder(data)
    return project["pytester"].runpytest_subprocess(
        "-p", "no:cacheprovider", "-rs", "--profile", str(root / "tiny.json"), "--dataset", str(data),
        "--shared-dir", str(root / "shared"), "--work-dir", str(work_dir()), "--reports-dir",
        str(root / "reports"), *args, timeout=600)


def test_several_models_give_cases_per_model_and_backend_one_model_after_the_other(project):
    result = run(project, "--collect-only", "-q", "--model", "seed,resnet-small", "--backend", "jax,torch")
    assert result.ret == 0, result.stdout.str()
    ids = [line.split("::")[1] for line in result.stdout.lines if "test_cases.py::" in line]
    expected = []
    for model in ("seed", "resnet-small"):  # all of one model's cases, then the next model's
        expected += [f"{case}[{model}-{backend}]" for case in ("test_train", "test_predict")
                     for backend in ("jax", "torch")]
        expected += [f"test_ensemble[{model}]", f"test_fidelity[{model}-jax]", f"test_fidelity[{model}-torch]",
                     f"test_speed[{model}-jax]", f"test_speed[{model}-torch]", f"test_serve[{model}-jax]",
                     f"test_serve[{model}-torch]"]
    assert ids == expected


def test_one_model_keeps_the_backend_ids(project):
    result = run(project, "--collect-only", "-q", "--model", "resnet-small", "--backend", "jax")
    ids = [line.split("::")[1] for line in result.stdout.lines if "test_cases.py::" in line]
    assert ids == ["test_train[jax]", "test_predict[jax]", "test_ensemble", "test_fidelity[jax]", "test_speed[jax]",
                   "test_serve[jax]"]


def earlier_run(root: Path) -> dict[Path, bytes]:
    """A finished run with its report and analysis; returns every file it holds, with its bytes."""
    folder = write_run(root / "shared", RunSpec(run_id="kept", backends=("jax",)))
    (folder / layout.REPORT_MD).write_text("# the earlier report\n")
    (folder / layout.ENSEMBLE_JSON).write_text("{}\n")
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", ["no_build", "missing"])
def test_a_missing_file_or_one_without_build_stops_the_session_in_one_line(project, case):
    root = project["root"]
    kept = earlier_run(root)
    path = root / f"{case}.py"
    if case != "missing":
        path.write_text(BAD_FILES[case][0])
    words = BAD_FILES[case][1] if case != "missing" else "does not exist"
    result = run(project, "--model", str(path), "--backend", "jax", "--run-id", "kept")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    said = [line for line in result.stderr.lines if str(path) in line]
    assert len(said) == 1 and words in said[0], result.stderr.str()
    assert {p: p.read_bytes() for p in kept} == kept and not (root / "shared" / "runs" / "kept" / "jax" /
                                                              layout.log_name("train")).exists()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["fails_to_import", "not_a_model", "seven_classes"])
def test_a_model_that_cannot_be_built_stops_the_session_before_any_job(project, case):
    """Found by building it once in the Keras 3 runtime: one line, exit non-zero, nothing of the earlier run lost."""
    root = project["root"]
    kept = earlier_run(root)
    source, words = BAD_FILES[case]
    path = root / f"{case}.py"
    path.write_text(source)
    result = run(project, "--model", str(path), "--backend", "jax,theano", "--run-id", "kept")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    said = [line for line in (result.stdout.lines + result.stderr.lines) if line.startswith("Exit: ")
            or "keras-multibackend:" in line]
    assert len(said) == 1 and f"model file {path}" in said[0] and words in said[0], said
    assert {p: p.read_bytes() for p in kept} == kept  # the earlier report and analysis too
    runs = root / "shared" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["kept"]
    assert not any((runs / "kept" / b / layout.log_name("train")).exists() for b in ("jax", "theano"))


@pytest.mark.slow
def test_a_keras_3_only_model_skips_theano_and_cntk_with_the_missing_layer(project):
    root = project["root"]
    (root / "k3_only.py").write_text(KERAS3_ONLY)
    result = run(project, "--model", str(root / "k3_only.py"), "--backend", "theano,cntk", "--run-id", "k3")
    text = result.stdout.str()
    assert result.ret == 0, text
    reason = "model k3-only needs Keras 3: Keras 2.3.1 has no keras.layers.GroupNormalization"
    assert text.count(reason) >= 2 and "SKIPPED" in text
    assert not (root / "shared" / "runs" / "k3" / "theano" / layout.log_name("train")).exists()


@pytest.mark.slow
def test_two_models_run_one_after_the_other_each_with_its_run_report_and_benchmark_entries(project):
    root = project["root"]
    (root / "two_layers.py").write_text(BUILD + "    inputs = keras.layers.Input(shape=tuple(input_shape))\n"
                                        "    x = keras.layers.Flatten()(inputs)\n"
                                        "    return keras.models.Model(inputs, keras.layers.Dense(n_classes, "
                                        "activation='softmax')(x))\n")
    result = run(project, "--model", f"seed,{root / 'two_layers.py'}", "--backend", "tensorflow",
                 "--run-id", "pair", "--benchmark-json", str(root / "bench.json"), "-p", "no:randomly",
                 "-k", "not test_speed and not test_serve")  # the phases that read the model's weights
    text = result.stdout.str()
    assert result.ret == 0, text
    for model in ("seed", "two-layers"):
        folder = root / "shared" / "runs" / f"pair-{model}"
        assert json.loads((folder / layout.RUN_JSON).read_text())["model"]["name"] == model
        assert f"model {model}" in (folder / layout.REPORT_MD).read_text().splitlines()[0]
        assert (root / "shared" / "history" / ("tiny.jsonl" if model == "seed" else "tiny@two-layers.jsonl")).exists()
    saved = json.loads((root / "bench.json").read_text())["benchmarks"]
    by_name = {b["name"]: b for b in saved}
    train = by_name["test_train[two-layers-tensorflow]"]
    assert train["param"] == "two-layers-tensorflow" and train["extra_info"]["model"] == "two-layers"
    assert by_name["test_train[seed-tensorflow]"]["extra_info"]["model"] == "seed"
    started = [i for i, line in enumerate(result.stdout.lines) if "jobs to run on the local executor" in line]
    ended = [i for i, line in enumerate(result.stdout.lines) if "[tensorflow/fidelity] succeeded" in line]
    assert len(started) == 2 and ended[0] < started[1]  # the second model's jobs start after the first's end
