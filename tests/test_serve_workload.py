"""The serve job's scenarios, schedule, search and audit sample (``harness.workload.serve``), on a stand-in.

No Keras here: the backend is a stand-in ``answer`` that returns the predict
job's probabilities for the rows it is given and advances a fake clock by a
fixed service time, so every latency is known exactly. The real job runs in
the slow tests (tests/test_workload_backends.py, tests/test_plugin.py).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.scoring import serving
from harness.workload import faults, serve


class Clock:
    """A fake ``perf_counter`` and ``sleep``: time moves only when a query is answered or the server sleeps."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def stand_in(predicted: np.ndarray, clock: Clock, service_s: float = 0.001, first_s: float = 0.5):
    """A backend whose answer for image i is ``predicted[i]``; a new batch size costs ``first_s`` once."""
    seen = set()

    def answer(images: np.ndarray) -> np.ndarray:
        clock.now += service_s if len(images) in seen else first_s
        seen.add(len(images))
        return predicted[images[:, 0].astype(int)].astype(np.float32)
    return answer


def probabilities(n: int, classes: int = 10, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, classes)) * 3
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


IMAGES = np.arange(60, dtype=np.float32).reshape(60, 1)  # image i is its own row number
PREDICTED = probabilities(60)


# -- the Server's schedule ----------------------------------------------------------------------------
def test_the_poisson_schedule_has_the_offered_rate_and_starts_at_zero():
    """``loadgen.cc``: ``ScheduleDistribution<Server>`` draws exponential gaps of mean 1 / rate, and
    ``GenerateQueries`` puts the first query at 0. Over 20,000 queries the mean gap is within 3% of
    1 / rate (its standard error is 0.7%)."""
    times = serve.poisson_schedule(rate=250.0, seconds=80.0, min_queries=100, seed=7)
    assert times[0] == 0.0 and np.all(np.diff(times) >= 0)
    assert len(times) == pytest.approx(250 * 80, rel=0.03)
    assert np.mean(np.diff(times)) == pytest.approx(1 / 250.0, rel=0.03)
    gaps = np.diff(times) * 250.0  # unit exponential: its standard deviation is its mean
    assert np.std(gaps) == pytest.approx(1.0, rel=0.05)


def test_the_schedule_is_seeded_and_every_rate_scales_the_same_draws():
    a = serve.poisson_schedule(100.0, 2.0, 50, seed=3)
    assert np.array_equal(a, serve.poisson_schedule(100.0, 2.0, 50, seed=3))
    assert not np.array_equal(a[:50], serve.poisson_schedule(100.0, 2.0, 50, seed=4)[:50])
    doubled = serve.poisson_schedule(200.0, 2.0, 50, seed=3)
    np.testing.assert_allclose(doubled[:len(a)], a / 2.0, rtol=1e-12)


def test_the_schedule_runs_until_both_its_duration_and_its_query_count_are_reached():
    """``GenerateQueries``: ``while (prev_timestamp < gen_duration || queries.size() < min_queries)``."""
    long_enough = serve.poisson_schedule(1000.0, 0.5, 10, seed=1)
    assert long_enough[-1] >= 0.5 and long_enough[-2] < 0.5
    many_enough = serve.poisson_schedule(10.0, 0.5, 100, seed=1)
    assert len(many_enough) == 100
    with pytest.raises(ValueError, match="the offered rate must be above 0"):
        serve.poisson_schedule(0.0, 1.0, 10, seed=1)


# -- the scenarios ---------------------------------------------------------------------------------------
def test_single_stream_times_the_first_query_apart_and_runs_until_both_minimums():
    clock = Clock()
    marks = []
    run = serve.single_stream(stand_in(PREDICTED, clock), IMAGES, serve.Samples(60, 1), min_seconds=0.05,
                              min_queries=20, clock=clock, on_first=lambda: marks.append(clock.now))
    assert run["first_query_s"] == pytest.approx(0.5) and marks == [pytest.approx(0.5)]
    assert run["latency_s"] == pytest.approx([0.001] * len(run["latency_s"]))
    assert len(run["latency_s"]) == 51, "the 51st query is the first issued at 0.05 s"
    assert run["duration_s"] == pytest.approx(0.05)
    few = serve.single_stream(stand_in(PREDICTED, Clock()), IMAGES, serve.Samples(60, 1), 0.0, 30,
                              clock=Clock())
    assert len(few["latency_s"]) == 30


def test_the_server_counts_queueing_from_each_querys_arrival():
    """One query at a time: a query that arrives while another is answered waits, and its latency is
    measured from its scheduled arrival (LoadGen: latency from the scheduled time)."""
    clock = Clock()
    arrivals = np.array([0.0, 0.0005, 0.0012, 0.01])
    run = serve.server(stand_in(PREDICTED, clock, service_s=0.001, first_s=0.001), IMAGES, serve.Samples(60, 2),
                       arrivals, bound_s=0.015, clock=clock, sleep=clock.sleep)
    # answered at 0.001, 0.002 (waited 0.0005), 0.003 (waited 0.0008), 0.011
    assert run["latency_s"] == pytest.approx([0.001, 0.0015, 0.0018, 0.001])
    assert run["passed"] and not run["stopped_early"] and run["answered"] == 4


def test_an_overloaded_server_stops_once_its_p99_cannot_stay_within_the_bound():
    """At 2x the rate it can answer, the queue grows without end; with 200 queries a p99 within the
    bound allows one query over it, so the run stops at the second."""
    clock = Clock()
    arrivals = np.arange(200) * 0.0005
    run = serve.server(stand_in(PREDICTED, clock, service_s=0.001, first_s=0.001), IMAGES, serve.Samples(60, 2),
                       arrivals, bound_s=0.015, clock=clock, sleep=clock.sleep)
    assert not run["passed"] and run["stopped_early"] and run["over_bound"] == 2
    assert run["answered"] < 200 and max(run["latency_s"]) > 0.015


def test_offline_answers_batches_of_the_seeded_order_cycling_through_it():
    clock = Clock()
    order = np.random.RandomState(0).permutation(60)
    run = serve.offline(stand_in(PREDICTED, clock), IMAGES[order], order, batch=32, min_seconds=0.004,
                        min_images=100, clock=clock)
    assert run["first_query_s"] == pytest.approx(0.5)
    assert len(run["batch_s"]) == 4 and run["images"] == 128
    expected = [int(order[p % 60]) for p in range(32, 32 + 128)]  # batch 0 was the cold one
    assert run["rows"] == expected
    np.testing.assert_allclose(np.stack(run["outputs"]), PREDICTED[expected], rtol=1e-6)


# -- the search ------------------------------------------------------------------------------------------
def test_the_search_brackets_the_peak_and_ends_by_loadgens_rule():
    """``loadgen.cc``: ``FindBoundaries`` widens by (1 + step) until a rate fails, then
    ``FindPeakPerformanceBinarySearch`` bisects until ``IsFinished`` (``test_settings_internal.h``: the
    bounds agree to ``server_find_peak_qps_decimals_of_precision`` decimals)."""
    tried = []
    found = serve.find_peak(lambda rate: tried.append(rate) or rate <= 137.26, first_rate=20.0, max_trials=50)
    assert tried[:4] == [20.0, 40.0, 80.0, 160.0], "doubling from a rate that passes"
    assert found["finished"] and found["peak_rate"] <= 137.26 < found["failed_rate"]
    assert math.floor(found["peak_rate"] * 10) + 1 >= math.floor(found["failed_rate"] * 10)
    assert len(found["tried"]) == len(tried) < 50


def test_the_search_never_tries_more_rates_than_its_limit_and_says_where_it_stopped():
    found = serve.find_peak(lambda rate: rate <= 137.26, first_rate=20.0, max_trials=6)
    assert len(found["tried"]) == 6 and not found["finished"]
    assert found["peak_rate"] == 120.0 and found["failed_rate"] == 140.0  # 20 40 80 160 | 120 140
    never_fails = serve.find_peak(lambda rate: True, first_rate=10.0, max_trials=3)
    assert never_fails["peak_rate"] == 40.0 and never_fails["failed_rate"] is None


def test_a_first_rate_that_fails_is_halved_until_one_passes():
    """LoadGen stops when the user's lower bound fails; here the first rate is halved instead."""
    tried = []
    found = serve.find_peak(lambda rate: tried.append(rate) or rate <= 30.0, first_rate=100.0, max_trials=4)
    assert tried == [100.0, 50.0, 25.0, 37.5] and found["peak_rate"] == 25.0 and found["failed_rate"] == 37.5
    nothing = serve.find_peak(lambda rate: False, first_rate=100.0, max_trials=3)
    assert nothing["peak_rate"] is None and nothing["failed_rate"] == 25.0
    with pytest.raises(ValueError, match="at least one trial"):
        serve.find_peak(lambda rate: True, first_rate=1.0, max_trials=0)


# -- the audit ---------------------------------------------------------------------------------------------
def test_the_audit_keeps_at_least_32_answers_or_one_percent_seeded():
    assert len(serve.audit_positions(10, 0)) == 10
    assert len(serve.audit_positions(1000, 0)) == 32
    assert len(serve.audit_positions(10_000, 0)) == 100
    assert np.array_equal(serve.audit_positions(5000, 3), serve.audit_positions(5000, 3))
    assert not np.array_equal(serve.audit_positions(5000, 3), serve.audit_positions(5000, 4))


def served_answers(monkeypatch, fault: str) -> dict[str, np.ndarray]:
    """A SingleStream and an Offline run of the stand-in, faulty as ``fault`` plans, and what the audit keeps."""
    if fault:
        monkeypatch.setenv(faults.VARIABLE, f"torch/serve:{fault}")
    else:
        monkeypatch.delenv(faults.VARIABLE, raising=False)
    clock = Clock()
    wrapped = faults.serving_answers("torch", "serve", stand_in(PREDICTED, clock))

    def answer(images):  # a cached answer costs no model time, but time still passes
        clock.sleep(0.0001)
        return wrapped(images)
    single = serve.single_stream(answer, IMAGES, serve.Samples(60, 5), 0.05, 100, clock=clock)
    order = np.random.RandomState(1).permutation(60)
    batch = serve.offline(answer, IMAGES[order], order, 8, 0.01, 100, clock=clock)
    kept = {}
    for name, run in (("single_stream", single), ("offline_b8", batch)):
        rows, probs, _ = serve._audited(run, seed=9, offset=0)
        kept[f"{name}__rows"], kept[f"{name}__probs"] = np.asarray(rows), probs
    return kept


@pytest.mark.parametrize("fault", ["cached-answer", "previous-answer"])
def test_the_audit_catches_a_server_that_answers_from_a_cache_or_one_query_late(monkeypatch, fault):
    """LoadGen's TEST01: answers kept during the timed run must be the accuracy run's. A server that
    returns its first answer for every query, or each query's predecessor's, differs from the predict
    job's probabilities for the same rows in every timed run; an honest one matches exactly."""
    honest = serving.audit(served_answers(monkeypatch, ""), PREDICTED)
    assert honest["passed"] and honest["images"] == 64
    assert max(r["max_abs_dp"] for r in honest["runs"].values()) < 1e-6  # float32 of the same numbers
    caught = serving.audit(served_answers(monkeypatch, fault), PREDICTED)
    assert caught["passed"] is False and caught["failed_runs"] == ["offline_b8", "single_stream"]
    assert caught["message"].startswith("the served answers differ from the predict job's for the same images "
                                        "and weights in 2 of 2 timed runs")


def test_a_fault_planned_for_another_backend_or_phase_changes_nothing(monkeypatch):
    monkeypatch.setenv(faults.VARIABLE, "jax/serve:cached-answer;torch/predict:previous-answer")
    answer = stand_in(PREDICTED, Clock())
    assert faults.serving_answers("torch", "serve", answer) is answer
    assert faults.serving_fault("jax", "serve") == "cached-answer"
