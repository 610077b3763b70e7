"""The benchmark: train and predict on every backend, check they compute the same model, ensemble them.

``pytest benchmarks/ --backend all`` runs one job per (backend, phase) through
the chosen executor, for the model ``--model`` names (the seed's CNN by
default); with several models (``--model seed,resnet-small``) every case runs
per model and backend (``test_train[resnet-small-jax]``), one run each. Each case records the job's wall time with
pytest-benchmark and the figures measured inside the job (steady-state
images/s, epoch times, inference latency) in the benchmark JSON.
"""
import pytest

from harness.pytest_plugin import fail_unless_ok, record_job_timing
from harness.scoring.gather import job_figures


def test_train(model_name, backend_name, kbench, request):
    """The backend trains the model on the profile's data and writes its weights."""
    result = kbench.job(backend_name, "train")
    fail_unless_ok(result)
    figures = job_figures(kbench.result_json(backend_name, "train"), "train")
    record_job_timing(request, result, figures)
    assert figures["steady_images_per_s"] and figures["steady_images_per_s"] > 0


def test_predict(model_name, backend_name, kbench, request):
    """The backend writes softmax outputs for every test image, as accurate as its baseline."""
    result = kbench.job(backend_name, "predict")
    fail_unless_ok(result)
    figures = job_figures(kbench.result_json(backend_name, "predict"), "predict")
    record_job_timing(request, result, figures)
    assert figures["images_per_s"] and figures["images_per_s"] > 0
    kbench.check_member(backend_name, figures["test_accuracy"])


def test_ensemble(model_name, kbench):
    """The seed's weighted ensemble of every backend that finished meets its baseline."""
    analysis = kbench.check_ensemble()
    ensemble = analysis.ensemble
    assert abs(sum(ensemble.weights.values()) - 1.0) < 1e-9
    assert set(ensemble.members) == {name for name, row in analysis.members.items() if row.ok}


def test_fidelity(model_name, backend_name, kbench, request):
    """The backend's model gives the same outputs as every other backend's for the same weights.

    Its fidelity job ran every finished member's trained weights on the first
    test images; the case fails, with the numbers, when the fidelity matrix
    names this backend (max |dp| or argmax agreement beyond float32 tolerance
    against most other backends), or when its one training step from the same
    weights gives another loss or other gradients than most backends'.
    """
    result = kbench.job(backend_name, "fidelity")
    fail_unless_ok(result)
    record_job_timing(request, result, {})
    section = kbench.analysis().fidelity
    if not section["available"]:
        pytest.skip(f"no fidelity matrix in this run: {section['reason']}")
    assert backend_name in section["backends"], section["problems"].get(backend_name, "no fidelity outputs")
    assert backend_name not in section["named"], section["named"].get(backend_name)
    step = section["step"]
    assert backend_name not in step.get("named", {}), step["named"].get(backend_name)
