"""LoadGen's validity rules (``harness.scoring.loadgen_rules``) reproduce LoadGen's own numbers.

The reference values are LoadGen's, never worked out here: the counts its
``mlperf_log_summary.txt`` prints ("Need to process at least 64 queries",
"Would discard 51 highest latency queries"), the minimum query count
``mlperf.conf`` sets for a p99, and the constants in its sources. Each test
names the file and function of mlcommons/inference ``loadgen/`` it follows.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.scoring import intervals, loadgen_rules


def test_the_p90_and_p99_minimums_are_loadgens_64_and_662():
    """``results.cc``, ``PerformanceSummary::EarlyStopping`` (SingleStream): "Need to process at least
    h_min + 1 queries for early stopping", with ``h_min = find_min_passing(1, p, 0, 0.99)``
    (``early_stopping.cc``). LoadGen prints 64 for the p90 (mlcommons/inference issue #1397: "Only
    processed 58 queries. Need to process at least 64 queries for early stopping"), and "would need to
    process at least 662 total queries" for the p99, the count ``mlperf.conf`` requires for it
    (``*.MultiStream.min_query_count = 662``)."""
    assert loadgen_rules.early_stopping_minimum(0.90) == 64
    assert loadgen_rules.early_stopping_minimum(0.99) == 662
    too_few = loadgen_rules.single_stream_estimate([0.001] * 58, 0.90)
    assert not too_few.met and too_few.reason() == "58 queries; p90 needs at least 64"
    assert loadgen_rules.single_stream_estimate([0.001] * 312, 0.99).reason() == "312 queries; p99 needs at least 662"


def test_with_no_query_over_the_bound_the_minimum_is_loadgens_closed_form():
    """``early_stopping.cc``, ``MinPassingQueriesFinder::operator()``: for t = 0 the search starts from
    ``ceil(log(1 - c) / log(p - d))``, which is the answer itself: 459 queries for a p99 at 99%
    confidence, 44 for a p90."""
    assert loadgen_rules.min_passing(0, 0.99) == math.ceil(math.log(0.01) / math.log(0.99)) == 459
    assert loadgen_rules.min_passing(0, 0.90) == 44


@pytest.mark.parametrize("queries, discarded", [
    (201, 9), (659, 47), (708, 51), (2048, 172), (2116, 178), (2145, 181), (7469, 685), (79944, 7796)])
def test_the_early_stopping_estimate_discards_as_many_queries_as_loadgen(queries, discarded):
    """``results.cc``, ``PerformanceSummary::EarlyStopping`` (SingleStream): the estimate is the latency at
    sorted index ``n - t``, "Would discard t - 1 highest latency queries". The pairs are LoadGen's own
    printed lines ("Processed at least 64 queries (708). Would discard 51 highest latency queries.") in
    the SingleStream ``mlperf_log_summary.txt`` of real runs, as published in public repositories."""
    latency = np.random.default_rng(queries).lognormal(0.0, 0.2, size=queries)
    found = loadgen_rules.single_stream_estimate(latency, 0.90)
    assert found.met and found.discarded == discarded
    assert found.estimate == np.sort(latency)[queries - discarded - 1]
    assert found.estimate >= loadgen_rules.percentile(latency, 0.90), "a conservative estimate of the p90"


def test_the_p99_estimate_needs_662_queries_and_at_708_is_the_slowest():
    """LoadGen's summary of a 708-query SingleStream run gives an "Early stopping 99th percentile
    estimate" equal to its max latency (10952369 ns both): too few queries to discard any."""
    latency = np.random.default_rng(1).lognormal(0.0, 0.2, size=708)
    found = loadgen_rules.single_stream_estimate(latency, 0.99)
    assert found.met and found.discarded == 0 and found.estimate == latency.max()


def test_odds_is_the_binomial_tail_loadgen_computes_with_its_beta_function():
    """``early_stopping.cc``, ``odds``: ``BetaRegularized[p - d, h, 1 + t]`` is the chance of at most t
    over-latency queries among h + t; checked against the sum of binomial terms."""
    h, t, p = 50, 3, 0.9
    direct = sum(math.comb(h + t, x) * (1 - p) ** x * p ** (h + t - x) for x in range(t + 1))
    assert loadgen_rules.odds(h, t, p) == pytest.approx(direct, rel=1e-12)


def test_a_percentile_is_loadgens_index_into_the_sorted_latencies():
    """``results.cc``, ``ProcessLatencies``: ``sample_latencies[sample_count * percentile]``."""
    values = list(range(100, 0, -1))
    assert loadgen_rules.percentile(values, 0.90) == 91
    assert loadgen_rules.percentile(values, 0.99) == 100
    assert loadgen_rules.percentile([5.0], 0.99) == 5.0


def test_a_run_is_valid_only_with_loadgens_default_minimum_duration_and_query_count():
    """``test_settings.h``: ``min_duration_ms = 10000``, ``min_query_count = 100``; ``results.cc``:
    "Result is : VALID" only when ``MinDurationMet`` and ``MinQueriesMet`` and early stopping hold."""
    assert loadgen_rules.run_validity(10.0, 100).valid
    short = loadgen_rules.run_validity(9.5, 99, "58 queries; p90 needs at least 64")
    assert short.word == "INVALID"
    assert short.reasons == ("ran 9.5 s; LoadGen's minimum duration is 10 s", "99 queries; LoadGen's minimum is 100",
                             "58 queries; p90 needs at least 64")


def test_a_server_run_needs_enough_queries_for_its_count_over_the_bound():
    """``results.cc``, ``EarlyStopping`` (Server): t queries over the bound need ``min_passing(t) + t``
    queries in all."""
    fast = loadgen_rules.server_early_stopping([0.001] * 459, bound_s=0.015)
    assert fast.met and fast.needed == 459
    one_slow = loadgen_rules.server_early_stopping([0.001] * 459 + [0.5], bound_s=0.015)
    assert not one_slow.met and one_slow.needed == loadgen_rules.min_passing(1, 0.99) + 1 == 662
    assert one_slow.reason() == "460 queries with 1 over the bound; early stopping needs at least 662"


def test_a_quantiles_interval_covers_it_as_often_as_it_says():
    """``intervals.quantile_ci``: order statistics chosen from the binomial distribution; over many
    draws from a known distribution, the 95% interval of the p90 holds the true p90 at least 95% of the
    time (to within the simulation's own noise), and the p99 of 100 values has no upper end."""
    rng = np.random.default_rng(0)
    true_p90 = math.exp(1.2815515655446004 * 0.5)  # the p90 of lognormal(0, 0.5)
    hits = sum(low <= true_p90 <= high for low, high in
               (intervals.quantile_ci(rng.lognormal(0.0, 0.5, size=200), 0.9) for _ in range(400)))
    assert hits / 400 >= 0.93
    low, high = intervals.quantile_ci(rng.lognormal(0.0, 0.5, size=100), 0.99)
    assert low is not None and high is None
