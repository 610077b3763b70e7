"""MLPerf LoadGen's validity rules, in numpy: tail percentiles, early stopping, minimum counts and durations.

The serve phase times inference the way MLPerf Inference's load generator
(mlcommons/inference, ``loadgen/``) does; this module judges what it measured
by LoadGen's own rules, so a p99 drawn from 20 queries is never reported as
if it were sure. Each rule names the LoadGen file and function it follows:

* a latency percentile is LoadGen's: the sorted latencies at index
  ``int(n * p)`` (``results.cc``, ``PerformanceSummary::ProcessLatencies``);
* early stopping (``early_stopping.cc``: ``odds``, ``find_min_passing``,
  ``MinPassingQueriesFinder``; ``results.cc``: ``PerformanceSummary::EarlyStopping``):
  the number of queries that makes "at most t of them were slower than the
  estimate" improbable (below 1%) if the true percentile were higher. A
  SingleStream run gets a conservative estimate of its p90 (and of its p99
  once it has enough queries: 64 and 662); a Server run needs enough queries
  for its count of over-bound ones;
* a run is VALID when it lasted LoadGen's minimum duration, issued its minimum
  query count and (where it applies) met early stopping and the Server's
  latency bound (``results.cc``: ``MinDurationMet``, ``MinQueriesMet``,
  ``PerfConstraintsMet``; ``PerformanceSummary::LogSummary``'s "Result is").
  The minimums are LoadGen's defaults (``test_settings.h``: ``min_duration_ms
  = 10000``, ``min_query_count = 100``); an official submission needs 600 s
  (``mlperf.conf``), which this harness does not claim.

Pure: numbers in, numbers and sentences out.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MIN_DURATION_S = 10.0
"""LoadGen's default minimum duration of a run (``test_settings.h``: ``min_duration_ms = 10000``)."""
MIN_QUERY_COUNT = 100
"""LoadGen's default minimum query count (``test_settings.h``: ``min_query_count = 100``)."""
CONFIDENCE = 0.99
"""Early stopping's confidence (``results.cc``, ``EarlyStopping``: ``double confidence = 0.99``)."""
TOLERANCE = 0.0
"""Early stopping's tolerance (``results.cc``, ``EarlyStopping``: ``double tolerance = 0.0``)."""
SINGLE_STREAM_PERCENTILE = 0.90
"""SingleStream's target percentile (``test_settings.h``; ``mlperf.conf``: ``*.SingleStream.target_latency_percentile = 90``)."""
MULTI_STREAM_PERCENTILE = 0.99
"""The second SingleStream estimate LoadGen makes (``results.cc``, ``EarlyStopping``: ``multi_stream_percentile = 0.99``)."""
SERVER_PERCENTILE = 0.99
"""The Server's latency percentile (``test_settings.h``: ``server_target_latency_percentile = 0.99``)."""


def percentile(latencies: Sequence[float], p: float) -> float:
    """LoadGen's percentile: the sorted latencies at index ``int(n * p)`` (``ProcessLatencies``)."""
    values = np.sort(np.asarray(latencies, dtype=np.float64))
    if not values.size:
        raise ValueError("no latencies to take a percentile of")
    return float(values[min(values.size - 1, int(values.size * p))])


# -- early stopping ------------------------------------------------------------------------------
def _log_binomial_cdf(t: int, n: int, q: float) -> float:
    """log P(X <= t) for X ~ Binomial(n, q), summed in log space (exact up to rounding)."""
    if t >= n:
        return 0.0
    x = np.arange(t + 1, dtype=np.float64)
    # log C(n, x) by the recurrence C(n, x) = C(n, x - 1) (n - x + 1) / x
    log_choose = np.concatenate(([0.0], np.cumsum(np.log(n - x[1:] + 1) - np.log(x[1:]))))
    terms = log_choose + x * math.log(q) + (n - x) * math.log1p(-q)
    top = float(terms.max())
    return top + math.log(float(np.exp(terms - top).sum()))


def odds(h: int, t: int, p: float, d: float = TOLERANCE) -> float:
    """The chance of at most ``t`` over-latency queries among ``h + t`` if each is over with chance
    ``1 - (p - d)``: ``BetaRegularized[p - d, h, 1 + t]`` (``early_stopping.cc``, ``odds``)."""
    return math.exp(_log_binomial_cdf(t, h + t, 1.0 - (p - d)))


def min_passing(t: int, p: float, d: float = TOLERANCE, c: float = CONFIDENCE) -> int:
    """The fewest under-latency queries ``h`` with ``odds(h, t, p, d) < 1 - c`` (``early_stopping.cc``,
    ``find_min_passing`` / ``MinPassingQueriesFinder``): a search over h, which odds falls with."""
    if t < 0:
        raise ValueError(f"t counts queries; got {t}")
    high = max(1, math.ceil(math.log(1 - c) / math.log(p - d)))  # LoadGen's own bound for t = 0
    while odds(high, t, p, d) >= 1 - c:
        high *= 2
    low = 0
    while high - low > 1:
        middle = (low + high) // 2
        if odds(middle, t, p, d) < 1 - c:
            high = middle
        else:
            low = middle
    return high


def early_stopping_minimum(p: float) -> int:
    """Queries a SingleStream run needs before early stopping can estimate its ``p`` percentile
    (``EarlyStopping``: "Need to process at least h_min + 1 queries"): 64 for p90, 662 for p99."""
    return min_passing(1, p) + 1


@dataclass(frozen=True)
class EarlyStopping:
    """LoadGen's early-stopping estimate of one percentile of a SingleStream run."""

    percentile: float
    queries: int
    needed: int
    """Queries early stopping needs before it estimates this percentile."""
    estimate: float | None = None
    """The latency at sorted index ``n - t``: the highest ``t - 1`` are discarded; None: too few queries."""
    discarded: int | None = None

    @property
    def met(self) -> bool:
        return self.estimate is not None

    def reason(self) -> str:
        """Why there is no estimate ("312 queries; p99 needs at least 662"), or ''."""
        if self.met:
            return ""
        return f"{self.queries} queries; p{self.percentile * 100:g} needs at least {self.needed}"


def single_stream_estimate(latencies: Sequence[float], p: float) -> EarlyStopping:
    """LoadGen's early-stopping estimate of the ``p`` percentile (``results.cc``, ``EarlyStopping``,
    SingleStream): the largest ``t`` with ``n >= min_passing(t) + t``; the estimate is the t-th
    highest latency. The search over ``t`` is by bisection (``min_passing(t) + t`` grows with t),
    where LoadGen counts up; both find the first t that fails."""
    n = len(latencies)
    needed = early_stopping_minimum(p)
    if n < needed:
        return EarlyStopping(p, n, needed)
    low, high = 1, n  # n >= min_passing(1) + 1 holds; n < min_passing(n) + n always
    while high - low > 1:
        middle = (low + high) // 2
        if n < min_passing(middle, p) + middle:
            high = middle
        else:
            low = middle
    ordered = np.sort(np.asarray(latencies, dtype=np.float64))
    return EarlyStopping(p, n, needed, float(ordered[n - low]), low - 1)


@dataclass(frozen=True)
class ServerEarlyStopping:
    """Whether a Server run has enough queries for its count of over-bound ones (``EarlyStopping``, Server)."""

    queries: int
    over_bound: int
    needed: int
    """``min_passing(t) + t``: the queries the run needed."""

    @property
    def met(self) -> bool:
        return self.queries >= self.needed

    def reason(self) -> str:
        if self.met:
            return ""
        return (f"{self.queries} queries with {self.over_bound} over the bound; early stopping needs at least "
                f"{self.needed}")


def server_early_stopping(latencies: Sequence[float], bound_s: float, p: float = SERVER_PERCENTILE
                          ) -> ServerEarlyStopping:
    over = int(np.sum(np.asarray(latencies, dtype=np.float64) > bound_s))
    return ServerEarlyStopping(len(latencies), over, min_passing(over, p) + over)


# -- validity --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Validity:
    """LoadGen's verdict on a run: VALID, or INVALID with every reason."""

    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def valid(self) -> bool:
        return not self.reasons

    @property
    def word(self) -> str:
        return "VALID" if self.valid else "INVALID"

    def text(self) -> str:
        return self.word if self.valid else f"INVALID: {'; '.join(self.reasons)}"

    def to_json(self) -> dict:
        return {"valid": self.valid, "reasons": list(self.reasons)}


def _duration_reason(seconds: float, what: str) -> str | None:
    if seconds >= MIN_DURATION_S:
        return None
    return f"{what} {seconds:.3g} s; LoadGen's minimum duration is {MIN_DURATION_S:g} s"


def _count_reason(count: int, what: str) -> str | None:
    if count >= MIN_QUERY_COUNT:
        return None
    return f"{count} {what}; LoadGen's minimum is {MIN_QUERY_COUNT}"


def run_validity(duration_s: float, queries: int, *extra: str | None, what: str = "queries",
                 lasted: str = "ran") -> Validity:
    """A run's duration and query count against LoadGen's minimums (``MinDurationMet``,
    ``MinQueriesMet``), with any further reasons (early stopping, the latency bound)."""
    reasons = [_duration_reason(duration_s, lasted), _count_reason(queries, what), *extra]
    return Validity(tuple(r for r in reasons if r))
