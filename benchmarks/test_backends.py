"""The benchmark: train and predict on every backend, check they compute the same model, time them, ensemble them.

``pytest benchmarks/ --backend all`` runs one job per (backend, phase) through
the chosen executor, for the model ``--model`` names (the seed's CNN by
default); with several models (``--model seed,resnet-small``) every case runs
per model and backend (``test_train[resnet-small-jax]``), one run each. Each case
declares the job phases it needs (``kbench_phases``: what they read is planned
with them) and is judged by ``harness.verdicts``. The train and predict cases
record their job's wall time with pytest-benchmark
(jobs may share the machine, and their extra_info says so); the speed case
records the backend's steady training steps, timed while no other job of the
run ran, one round per block of steps, with every step's time in its
extra_info for the regression gate (``kbench gate``); the serve case records
each SingleStream query's latency as a round, and every scenario's figures in
its extra_info.
"""
import pytest


@pytest.mark.kbench_phases("train")
def test_train(model_name, backend_name, kbench):
    """The backend trains the model on the profile's data and writes its weights."""
    kbench.check("train", backend_name)


@pytest.mark.kbench_phases("predict")
def test_predict(model_name, backend_name, kbench):
    """The backend writes softmax outputs for every test image, as accurate as its baseline."""
    kbench.check("predict", backend_name)


@pytest.mark.kbench_phases("predict")
def test_ensemble(model_name, kbench):
    """The seed's weighted ensemble of every backend that finished meets its baseline."""
    kbench.check("ensemble")


@pytest.mark.kbench_phases("fidelity")
def test_fidelity(model_name, backend_name, kbench):
    """The backend's model gives the same outputs as every other backend's for the same weights.

    Its fidelity job ran every finished member's trained weights on the first
    test images; the case fails, with the numbers, when the fidelity matrix
    names this backend (max |dp| or argmax agreement beyond float32 tolerance
    against most other backends), or when its one training step from the same
    weights gives another loss or other gradients than most backends'.
    """
    kbench.check("fidelity", backend_name)


@pytest.mark.kbench_phases("speed")
def test_speed(model_name, backend_name, kbench):
    """The backend's steady training and inference speed, timed with no other job running.

    pytest-benchmark gets one round per block of steady training steps; the
    case fails when the backend's model FLOP utilisation is above 100% of the
    machine's measured ceiling, which would mean the ceiling is wrong.
    """
    kbench.check("speed", backend_name)


@pytest.mark.kbench_phases("serve")
def test_serve(model_name, backend_name, kbench):
    """The backend served as MLPerf LoadGen serves, alone: SingleStream, Offline and Server.

    pytest-benchmark gets one round per SingleStream query; the extra_info
    holds every latency and each scenario's figures with LoadGen's verdict
    (VALID or INVALID, with why). The case fails when a sample of the answers
    served during the timed runs differs from the predict job's probabilities
    for the same images and weights (LoadGen's TEST01 audit).
    """
    kbench.check("serve", backend_name)
