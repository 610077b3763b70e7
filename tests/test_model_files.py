"""``--model``: which model a run builds, checked on the harness's own Python before anything runs.

No Keras here: these are the checks Python alone can make (the file, its
syntax, its ``build``, the Keras 2.3.1 names it uses) and where a model's
name takes its results (run ids, baselines, history, resume).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import baselines, history, options
from harness import models as model_files
from harness.errors import ConfigError
from harness.run_store import RunStore
from harness.workload import layout
from tests.run_fixtures import RunSpec, write_run

TWO_LAYERS = '''
def build(keras, input_shape, n_classes):
    inputs = keras.layers.Input(shape=tuple(input_shape))
    x = keras.layers.Flatten()(inputs)
    return keras.models.Model(inputs, keras.layers.Dense(n_classes, activation="softmax")(x))
'''
KERAS3_ONLY = '''
def build(keras, input_shape, n_classes):
    layers = keras.layers
    inputs = layers.Input(shape=tuple(input_shape))
    x = layers.GroupNormalization(groups=1)(inputs)
    x = keras.ops.mean(x, axis=(1, 2))
    return keras.models.Model(inputs, layers.Dense(n_classes, activation="softmax")(x))
'''


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_default_is_the_seeds_cnn_and_the_shipped_models_are_listed(tmp_path):
    assert model_files.shipped() == ["seed", "mobilenet-small", "resnet-small"]
    (spec,) = model_files.parse(None, tmp_path)
    assert spec.name == "seed" and spec.is_default and spec.path.name == "seed.py"
    assert [s.name for s in model_files.parse("resnet-small, mobilenet-small", tmp_path)] == [
        "resnet-small", "mobilenet-small"]


def test_every_shipped_model_runs_on_both_keras_lines_as_far_as_python_can_tell():
    for name in model_files.shipped():
        spec = model_files.resolve(name, Path.cwd())
        assert spec.keras2_missing == () and spec.skip_reason("cntk") is None, name


def test_a_model_file_is_named_after_its_file(tmp_path):
    spec = model_files.resolve(str(write(tmp_path, "My_Net.py", TWO_LAYERS)), tmp_path)
    assert spec.name == "my-net" and not spec.shipped and not spec.is_default
    assert spec.to_json()["name"] == "my-net" and len(spec.sha256) == 64


@pytest.mark.parametrize("text, words", [
    ("nope", "unknown model 'nope'; choose from seed, mobilenet-small, resnet-small, or give the path"),
    ("missing.py", "missing.py does not exist; give the path of a .py file defining build"),
    ("seed,seed", "--model names seed twice"),
])
def test_an_unknown_name_a_missing_file_or_a_repeat_is_one_line(tmp_path, text, words):
    with pytest.raises(ConfigError) as caught:
        model_files.parse(text, tmp_path)
    assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("source, words", [
    ("def build(keras, input_shape, n_classes):\n    if (n := n_classes):\n        pass\n",
     "is not Python 3.6 (line 2"),
    ("import keras\n\nMODEL = None\n", "has no build function; define build(keras, input_shape, n_classes)"),
    ("def build(keras):\n    pass\n", "build takes 1 argument(s); it must take (keras, input_shape, n_classes)"),
    ("def helper():\n    def build(keras, input_shape, n_classes):\n        pass\n", "has no build function"),
])
def test_a_file_that_is_not_python_36_or_has_no_build_is_refused_naming_it(tmp_path, source, words):
    path = write(tmp_path, "bad_net.py", source)
    with pytest.raises(ConfigError) as caught:
        model_files.resolve(str(path), tmp_path)
    assert str(caught.value).startswith(f"model file {path}") and words in str(caught.value)


def test_a_file_with_a_shipped_models_name_is_refused(tmp_path):
    path = write(tmp_path, "seed.py", TWO_LAYERS)
    with pytest.raises(ConfigError, match="has the name of the shipped model seed; rename the file"):
        model_files.resolve(str(path), tmp_path)


def test_keras_3_only_names_skip_theano_and_cntk_with_what_is_missing(tmp_path):
    spec = model_files.resolve(str(write(tmp_path, "k3_only.py", KERAS3_ONLY)), tmp_path)
    assert spec.keras2_missing == ("keras.layers.GroupNormalization", "keras.ops")
    reason = spec.skip_reason("theano")
    assert reason == (f"model k3-only needs Keras 3: Keras 2.3.1 has no keras.layers.GroupNormalization, "
                      f"keras.ops (used in {spec.path})")
    assert spec.skip_reason("cntk") == reason
    assert all(spec.skip_reason(b) is None for b in ("tensorflow", "jax", "torch"))


def test_baselines_and_history_are_kept_per_profile_and_model_the_seeds_under_their_old_names(tmp_path):
    assert baselines.path_for(tmp_path, "default") == tmp_path / "default.json"
    assert baselines.path_for(tmp_path, "default", "resnet-small") == tmp_path / "default@resnet-small.json"
    assert history.path_for(tmp_path, "smoke") == tmp_path / "smoke.jsonl"
    assert history.path_for(tmp_path, "smoke", "my-net") == tmp_path / "smoke@my-net.jsonl"
    with pytest.raises(ConfigError, match="model name '../x' is not a safe name"):
        baselines.path_for(tmp_path, "smoke", "../x")
    (tmp_path / "smoke.jsonl").write_text("")
    (tmp_path / "smoke@my-net.jsonl").write_text("")
    assert sorted(history.stored_keys(tmp_path)) == [("smoke", "my-net"), ("smoke", "seed")]


def runs_of(tmp_path: Path, **extra) -> list:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    values = {"backend": "jax,torch", "profile": "smoke", "executor": "local", "dataset": str(data),
              "baselines": None, "shared_dir": tmp_path / "shared", "work_dir": tmp_path / "work",
              "reports_dir": tmp_path / "reports"}
    return options.build_runs({**values, **extra}, tmp_path, tmp_path)


def test_several_models_make_one_run_each_named_after_the_model(tmp_path):
    runs = runs_of(tmp_path, model="seed,resnet-small", run_id="nightly-42")
    assert [(r.run_id, r.model.name) for r in runs] == [("nightly-42-seed", "seed"),
                                                      ("nightly-42-resnet-small", "resnet-small")]
    assert runs[1].baseline_path is None
    (one,) = runs_of(tmp_path, model="resnet-small", run_id="nightly-42", baselines=tmp_path / "b")
    assert one.run_id == "nightly-42" and one.baseline_path == tmp_path / "b" / "smoke@resnet-small.json"


def test_a_malformed_baseline_of_the_models_own_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "smoke@resnet-small.json").write_text("{")
    with pytest.raises(Exception, match="smoke@resnet-small.json"):
        runs_of(tmp_path, model="resnet-small", baselines=tmp_path / "b")
    runs_of(tmp_path, model="seed", baselines=tmp_path / "b")  # not the seed's file


def test_a_run_resumes_only_with_the_same_model_file(tmp_path):
    write_run(tmp_path, RunSpec(run_id="older"))  # from before models: its run.json names none
    folder = RunStore(tmp_path, "older")
    settings = json.loads((folder.path / layout.RUN_JSON).read_text())
    seed = model_files.resolve("seed", tmp_path)
    folder.write_settings({**settings, "model": seed.to_json()})  # the seed's CNN resumes it
    other = model_files.resolve("resnet-small", tmp_path)
    with pytest.raises(ConfigError, match="run older was started with a different model"):
        folder.write_settings({**settings, "model": other.to_json()})


def test_kbench_compare_names_another_model_a_run_from_before_models_counts_as_the_seeds():
    from harness.compare_runs import differences_in_setup
    from harness.scoring.record import RunAnalysis

    def run(**settings):
        return RunAnalysis(run_id="r", method="seed", settings={"profile": {"name": "smoke"}, **settings})

    seed_run, older_run = run(model={"name": "seed"}), run()
    assert differences_in_setup(seed_run, older_run) == []
    assert differences_in_setup(seed_run, run(model={"name": "resnet-small"})) == [
        "the runs differ in model: 'seed' vs 'resnet-small'"]
