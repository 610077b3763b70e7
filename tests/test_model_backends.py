"""A model file that the Keras lines build differently (a strided depthwise convolution, batch norm,
dropout), trained on every backend this machine can run.

The same real session as ``test_workload_backends.py`` (real runtimes, real
subprocesses, tiny data, a model file of the test's own, which there has two
layers), with the phases that compare the backends. Each backend must train
it, predict with it and compute the same function of the same weights, and
every result must say which model (and which file) it came from.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness import models as model_files
from harness.backends import BACKENDS
from harness.jobs import JobState
from harness.session import BenchmarkRun
from harness.workload import layout
from tests.conftest import write_image_folder
from tests.test_workload_backends import make_config

pytestmark = pytest.mark.slow

DEPTHWISE = '''
"""What the Keras lines build differently unless told: a strided depthwise convolution, batch norm, dropout."""


def build(keras, input_shape, n_classes):
    layers = keras.layers
    axis = 1 if keras.backend.image_data_format() == "channels_first" else -1
    inputs = layers.Input(shape=tuple(input_shape))
    x = layers.Conv2D(4, (3, 3), padding="same")(inputs)
    x = layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = layers.DepthwiseConv2D((3, 3), strides=(2, 2), use_bias=False)(x)  # a bias before BN has no gradient
    x = layers.BatchNormalization(axis=axis, momentum=0.9)(x)
    x = layers.Dropout(0.5)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.models.Model(inputs, layers.Dense(n_classes, activation="softmax")(x))
'''
PHASES = ("train", "predict", "fidelity")
"""The phases that compare what the Keras lines build (its speed and serve jobs would run the same code as
the two-layer file's, which ``test_workload_backends.py`` runs through every phase)."""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    data = write_image_folder(root / "data")
    (root / "depthwise_bn.py").write_text(DEPTHWISE)
    spec = model_files.resolve(str(root / "depthwise_bn.py"), root)
    config = make_config(root / "shared", data, run_id=spec.name)
    config = type(config)(**{**config.__dict__, "model": spec, "phases": PHASES})
    session = BenchmarkRun(config, say=lambda line: None)
    session.start()
    try:
        analysis = session.finish()
    finally:
        session.close()
    return session, analysis, spec


@pytest.fixture(params=list(BACKENDS))
def backend(request, finished):
    session, _, _ = finished
    if request.param in session.skipped:
        pytest.skip(session.skipped[request.param])
    return request.param


def read(session, backend, phase):
    return json.loads((session.store.backend_dir(backend) / layout.result_name(phase)).read_text())


def test_the_model_file_trains_predicts_and_is_checked_on_every_backend(finished, backend):
    session, _, spec = finished
    assert set(session.phases) == set(PHASES)
    for phase in session.phases:
        result = session.result(backend, phase)
        assert result.state is JobState.SUCCEEDED, f"{backend}/{phase}: {result.reason}\n{result.log_tail}"
    train = read(session, backend, "train")
    assert train["model"]["name"] == spec.name and train["model"]["sha256"] == spec.sha256
    assert read(session, backend, "predict")["model"] == {"name": spec.name, "sha256": spec.sha256}
    probs = np.load(session.store.backend_dir(backend) / layout.probs_name("test"))
    assert probs.shape == (12, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)


def test_the_run_names_the_model_and_keeps_its_file(finished):
    session, analysis, spec = finished
    settings = json.loads((session.store.path / layout.RUN_JSON).read_text())
    assert settings["model"]["name"] == spec.name and settings["model"]["sha256"] == spec.sha256
    assert (session.store.path / layout.MODEL_FILE).read_text() == spec.path.read_text()
    assert analysis.model_name == spec.name
    ran = {b for b in BACKENDS if b not in session.skipped}
    assert analysis.ensemble is not None and set(analysis.ensemble.members) == ran


def test_every_backend_computes_the_same_function_of_the_model(finished):
    """For the depthwise model this is Theano's own flip of depthwise kernels, and the explicit padding."""
    session, analysis, _ = finished
    if len([b for b in BACKENDS if b not in session.skipped]) < 2:
        pytest.skip("fewer than two backends can run here")
    section = analysis.fidelity
    assert section["passed"], section["named"]
    assert section["step"]["available"] and section["step"]["passed"], section["step"]["named"]


def test_a_model_file_changed_after_the_run_started_fails_its_jobs_with_the_reason(finished):
    """The jobs build the run folder's copy; one edited behind the harness's back is refused, not trained."""
    session, _, _ = finished
    copy = Path(session.store.path) / layout.MODEL_FILE
    original = copy.read_text()
    try:
        copy.write_text(original + "\n# edited\n")
        from harness.workload import model

        settings = json.loads((session.store.path / layout.RUN_JSON).read_text())
        job = SimpleNamespace(settings=settings, run_dir=str(session.store.path))  # what a job knows
        with pytest.raises(model.ModelError, match="changed since the run started"):
            model.job_model_path(job)
    finally:
        copy.write_text(original)
