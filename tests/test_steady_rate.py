"""A training job's steady rate on a tiny profile: a real figure, stated as what it measured, or why there is none.

The workload's timing code on made-up step times (no backend trains here).
Issue 30, break 9: 24 training images, batch 8, 1 epoch (3 steps) failed
``test_train`` with a bare ``assert (None)``.
"""
from __future__ import annotations

import types

import pytest

from harness.jobs import JobResult, JobState
from harness.verdicts import train as train_verdict
from harness.workload.timing import WARMUP_STEPS, steady_basis, steady_rate


def one_epoch(steps: list[float], batch: int = 8):
    timer = types.SimpleNamespace(step_seconds=lambda: list(steps), batch_size=batch)
    return [{"images": batch * len(steps), "seconds": sum(steps)}], [timer]


def test_three_steps_of_one_epoch_give_the_rate_of_the_two_after_the_first_and_say_so():
    history, timers = one_epoch([5.0, 0.1, 0.1])
    assert steady_rate(history, timers) == 80.0
    assert steady_basis(history, timers) == ("the 2 step(s) after the first of the only epoch (fewer than 3 warm-up "
                                             "steps: may include warm-up)")


def test_a_longer_epoch_leaves_out_its_warm_up_steps():
    history, timers = one_epoch([5.0, 1.0, 1.0, 0.1, 0.1])
    assert WARMUP_STEPS == 3 and steady_rate(history, timers) == 80.0
    assert steady_basis(history, timers) == "steps after the first 3 of the only epoch"


def test_a_single_step_has_no_rate_and_the_verdict_says_what_to_change():
    history, timers = one_epoch([5.0])
    assert steady_rate(history, timers) is None
    data = {"timing": {"steady_images_per_s": None, "steady_basis": steady_basis(history, timers)}}
    run = types.SimpleNamespace(result=lambda b, p: JobResult(b, p, JobState.SUCCEEDED, wall_s=9.0),
                                result_json=lambda b, p: data,
                                config=types.SimpleNamespace(model=types.SimpleNamespace(name="seed", sha256="0")))
    verdict = train_verdict(run, "jax")
    assert verdict.message == ("jax/train measured no steady training rate (none: the only epoch had 1 step(s), and "
                               "a rate needs at least 2 (the first holds compilation); train on more images (n_train) "
                               "or for 2 epochs)")


@pytest.mark.parametrize("epochs", [2, 3])
def test_two_epochs_or_more_use_every_epoch_after_the_first(epochs):
    history = [{"images": 24, "seconds": 9.0}] + [{"images": 24, "seconds": 0.3}] * (epochs - 1)
    assert steady_rate(history, []) == 80.0 and steady_basis(history, []) == "epochs after the first"
