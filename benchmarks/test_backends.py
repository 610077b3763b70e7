"""The benchmark: train and predict on every backend, check they compute the same model, time them, ensemble them.

``pytest benchmarks/ --backend all`` runs one job per (backend, phase) through
the chosen executor, for the model ``--model`` names (the seed's CNN by
default); with several models (``--model seed,resnet-small``) every case runs
per model and backend (``test_train[resnet-small-jax]``), one run each. The
train and predict cases record their job's wall time with pytest-benchmark
(jobs may share the machine, and their extra_info says so); the speed case
records the backend's steady training steps, timed while no other job of the
run ran, one round per block of steps, with every step's time in its
extra_info for the regression gate (``kbench gate``).
"""
import pytest

from harness.pytest_plugin import fail_unless_ok, record_job_timing, record_speed
from harness.scoring.gather import job_figures


def test_train(model_name, backend_name, kbench, request):
    """The backend trains the model on the profile's data and writes its weights."""
    result = kbench.job(backend_name, "train")
    fail_unless_ok(result)
    figures = job_figures(kbench.result_json(backend_name, "train"), "train")
    record_job_timing(request, result, figures)
    assert figures["training_job_images_per_s"] and figures["training_job_images_per_s"] > 0


def test_predict(model_name, backend_name, kbench, request):
    """The backend writes softmax outputs for every test image, as accurate as its baseline."""
    result = kbench.job(backend_name, "predict")
    fail_unless_ok(result)
    figures = job_figures(kbench.result_json(backend_name, "predict"), "predict")
    record_job_timing(request, result, figures)
    assert figures["predict_job_images_per_s"] and figures["predict_job_images_per_s"] > 0
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


def test_speed(model_name, backend_name, kbench, request):
    """The backend's steady training and inference speed, timed with no other job running.

    pytest-benchmark gets one round per block of steady training steps; the
    case fails when the backend's model FLOP utilisation is above 100% of the
    machine's measured ceiling, which would mean the ceiling is wrong.
    """
    if not kbench.plans("speed"):  # the plugin deselects these cases for such a profile
        pytest.skip(f"profile {kbench.config.profile.name} times no speed phase (speed_steps is 0)")
    result = kbench.job(backend_name, "speed")
    fail_unless_ok(result)
    section = kbench.analysis().speed
    row = section["backends"].get(backend_name)
    assert row is not None, section["problems"].get(backend_name, "no speed figures")
    record_speed(request, result, kbench.result_json(backend_name, "speed"), row)
    assert backend_name not in section["above_ceiling"], section["above_ceiling"].get(backend_name)
