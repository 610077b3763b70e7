"""Training that diverges (a learning rate of 1e6: NaN loss) is one line naming the learning rate, not a traceback.

The workload's own code with stand-ins for Keras and the network (no backend
is trained here: a real diverging run costs minutes of CI for the same lines).
Issue 30, break 7.
"""
from __future__ import annotations

import json
import types

import pytest

from harness.workload import __main__ as workload_main
from harness.workload import layout, train
from harness.workload.job import InputError
from tests.run_fixtures import RunSpec, write_run

MESSAGE = ("the model diverged: its training loss became nan in epoch 1 at learning rate 1e+06; lower the learning "
           "rate (the profile's learning_rate, or the optimizer's in the model file)")


class StandInJob:
    run_id, backend = "synthetic1", "jax"

    def __init__(self, folder):
        self.dir = str(folder)

    def path(self, name):
        return f"{self.dir}/{name}"


def stand_in_network(rate: float):
    return types.SimpleNamespace(optimizer=types.SimpleNamespace(learning_rate=rate))


KERAS3 = types.SimpleNamespace(backend=types.SimpleNamespace())
"""Keras 3's backend module has no get_value: the optimizer's variable reads as an array."""


def test_a_nan_loss_fails_the_job_in_one_line_and_keeps_what_it_recorded(tmp_path):
    history = [{"epoch": 1, "loss": float("nan"), "accuracy": 0.1, "seconds": 1.5}]
    with pytest.raises(InputError) as err:
        train._diverged(StandInJob(tmp_path), KERAS3, stand_in_network(1e6), {"learning_rate": 1e-3}, history, 1,
                        "training loss", float("nan"))
    assert str(err.value) == MESSAGE and err.value.exit_code == 3
    kept = json.loads((tmp_path / layout.result_name("train")).read_text())
    assert kept["diverged"] == {"epoch": 1, "learning_rate": 1e6, "message": MESSAGE}
    assert kept["history"] == [{"epoch": 1, "loss": None, "accuracy": 0.1, "seconds": 1.5}]


def test_the_learning_rate_named_is_the_models_own_optimizers_else_the_profiles():
    keras2 = types.SimpleNamespace(backend=types.SimpleNamespace(get_value=lambda v: v * 1))
    assert train.learning_rate(keras2, stand_in_network(1e30), 1e-3) == 1e30
    assert train.learning_rate(KERAS3, types.SimpleNamespace(), 1e-3) == 1e-3


def test_the_job_says_it_in_one_line_without_a_traceback(tmp_path, monkeypatch, capsys):
    """Before: "ValueError: Out of range float values are not JSON compliant: nan" and a Python traceback."""
    write_run(tmp_path, RunSpec(backends=("jax",)))
    monkeypatch.setattr(workload_main, "_import_keras", lambda backend: KERAS3)

    def diverging(job, keras):
        job.events.close()  # a job is a process of its own, which closes it on exit; this one is the test's
        train._diverged(job, keras, stand_in_network(1e6), job.profile,
                        [{"epoch": 1, "loss": float("nan")}], 1, "training loss", float("nan"))

    monkeypatch.setattr(train, "run", diverging)
    code = workload_main.main(["train", "--shared", str(tmp_path), "--run-id", "synthetic1", "--backend", "jax"])
    err = capsys.readouterr().err
    assert code == InputError.exit_code
    assert err.splitlines()[-1] == layout.ERROR_PREFIX + MESSAGE
    assert "Traceback" not in err
