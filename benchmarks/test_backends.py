"""The benchmark: train and predict on every backend, then ensemble them.

``pytest benchmarks/ --backend all`` runs one job per (backend, phase) through
the chosen executor. Each case records the job's wall time with
pytest-benchmark and the figures measured inside the job (steady-state
images/s, epoch times, inference latency) in the benchmark JSON.
"""
from harness.pytest_plugin import fail_unless_ok, record_job_timing
from harness.scoring.gather import job_figures


def test_train(backend_name, kbench, request):
    """The backend trains the seed's CNN on the profile's data and writes its weights."""
    result = kbench.job(backend_name, "train")
    fail_unless_ok(result)
    figures = job_figures(kbench.result_json(backend_name, "train"), "train")
    record_job_timing(request, result, figures)
    assert figures["steady_images_per_s"] and figures["steady_images_per_s"] > 0


def test_predict(backend_name, kbench, request):
    """The backend writes softmax outputs for every test image, as accurate as its baseline."""
    result = kbench.job(backend_name, "predict")
    fail_unless_ok(result)
    figures = job_figures(kbench.result_json(backend_name, "predict"), "predict")
    record_job_timing(request, result, figures)
    assert figures["images_per_s"] and figures["images_per_s"] > 0
    kbench.check_member(backend_name, figures["test_accuracy"])


def test_ensemble(kbench):
    """The seed's weighted ensemble of every backend that finished meets its baseline."""
    analysis = kbench.check_ensemble()
    ensemble = analysis.ensemble
    assert abs(sum(ensemble.weights.values()) - 1.0) < 1e-9
    assert set(ensemble.members) == {name for name, row in analysis.members.items() if row.ok}
