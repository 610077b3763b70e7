"""How sure a speed or accuracy figure is: medians with their spread, and 95% intervals.

Pure numpy and the standard library, so a report, the speed gate, a test or a
notebook all state uncertainty the same way:

* ``summarise``: median, quartiles and a bootstrap interval of the median of
  repeated measurements (step times, epoch times);
* ``bootstrap_ci`` and ``ratio_of_medians``: percentile-bootstrap intervals of
  any statistic, and of one median over another (is B slower than A?);
* ``mean_ci``: Student's t interval of a mean;
* ``wilson``: the Wilson score interval of a proportion (test accuracy over n images);
* ``separated`` and ``ranking``: whether intervals tell figures apart, in one sentence.

Bootstraps are seeded, so the same data always gives the same interval, and
sort their input first, so the order the values were measured in does not
change the interval either. Quartiles and bootstrap percentiles use numpy's
default (linear interpolation between order statistics).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0

RESAMPLE_CHUNK_ELEMENTS = 4_000_000
"""Resampled values held at once (32 MB of float64): a bootstrap of many values
runs in chunks of resamples instead of one huge index array."""

Interval = tuple[float | None, float | None]
Figure = tuple[float, float | None, float | None]


@dataclass(frozen=True)
class Summary:
    """Repeated measurements of one figure: where they lie and how sure the median is."""

    n: int
    median: float
    q1: float
    q3: float
    iqr: float
    ci_low: float | None
    """Bootstrap interval of the median; None for a single value, which says nothing about spread."""
    ci_high: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _values(values: Iterable[float], name: str = "values", least: int = 1) -> np.ndarray:
    """``values`` as a sorted 1-D float64 array, or ValueError saying what is wrong."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a flat list of numbers; got shape {arr.shape}")
    if arr.size < least:
        raise ValueError(f"{name} must hold at least {least} value(s); got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return np.sort(arr)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (0.95 for a 95% interval); got {level}")


def _resampled(values: np.ndarray, statistic: Callable[..., Any], resamples: int,
               rng: np.random.Generator) -> np.ndarray:
    """``statistic`` of ``resamples`` resamples (with replacement) of sorted ``values``, vectorised in chunks.

    The median takes a shortcut: ``values`` is sorted, so a resample's median is
    the value at its middle index, and sorting small integer indices is several
    times faster than numpy's median of the resampled floats.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1; got {resamples}")
    n = values.size
    index_type = np.int16 if n <= np.iinfo(np.int16).max else np.int64
    middle = ((n - 1) // 2, n // 2)
    chunk = max(1, RESAMPLE_CHUNK_ELEMENTS // n)
    out = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        indices = rng.integers(0, n, size=(stop - start, n), dtype=index_type)
        if statistic is np.median:
            indices.sort(axis=1)
            out[start:stop] = (values[indices[:, middle[0]]] + values[indices[:, middle[1]]]) / 2
        else:
            out[start:stop] = statistic(values[indices], axis=1)
    return out


def _percentile_interval(estimates: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_ci(values: Iterable[float], statistic: Callable[..., Any] = np.median,
                 level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic`` (which must take ``axis=``) of ``values``.

    Needs at least two values: one value has no spread to resample. The same
    values, in any order, with the same seed give the same interval.
    """
    _check_level(level)
    arr = _values(values, least=2)
    return _percentile_interval(_resampled(arr, statistic, resamples, np.random.default_rng(seed)), level)


def summarise(values: Iterable[float], level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES,
              seed: int = DEFAULT_SEED) -> Summary:
    """Median, quartiles, interquartile range and a bootstrap interval of the median."""
    arr = _values(values)
    q1, q3 = (float(q) for q in np.percentile(arr, [25.0, 75.0]))
    low, high = (bootstrap_ci(arr, np.median, level, resamples, seed) if arr.size > 1 else (None, None))
    return Summary(n=int(arr.size), median=float(np.median(arr)), q1=q1, q3=q3, iqr=q3 - q1,
                   ci_low=low, ci_high=high)


def ratio_of_medians(base: Iterable[float], candidate: Iterable[float], level: float = DEFAULT_LEVEL,
                     resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> tuple[float, float, float]:
    """``median(candidate) / median(base)`` and its percentile-bootstrap interval.

    The two samples are resampled independently (they are separate runs); each
    needs at least two values and a positive median (times, rates).
    """
    _check_level(level)
    a = _values(base, "base", least=2)
    b = _values(candidate, "candidate", least=2)
    if np.median(a) <= 0 or np.median(b) <= 0:
        raise ValueError("a ratio of medians needs positive medians (times or rates); "
                         f"got {np.median(a):.3g} and {np.median(b):.3g}")
    rng = np.random.default_rng(seed)
    base_medians = _resampled(a, np.median, resamples, rng)
    candidate_medians = _resampled(b, np.median, resamples, rng)
    with np.errstate(divide="ignore"):  # a resample of a sample with zeros may have median 0
        ratios = candidate_medians / base_medians
    low, high = _percentile_interval(ratios, level)
    return float(np.median(b) / np.median(a)), low, high


# -- Student's t, without scipy ---------------------------------------------------------
def _t_two_sided_mass(theta: float, df: int) -> float:
    """P(|T| < t) for Student's t with ``df`` degrees of freedom, ``theta = atan(t / sqrt(df))``.

    The closed form for integer degrees of freedom (Abramowitz and Stegun,
    26.7.3 and 26.7.4): a finite sum of powers of ``cos(theta)``, exact up to rounding.
    """
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df == 1:
        return 2.0 * theta / math.pi
    # even df: sin(theta) * sum_{k=0}^{(df-2)/2} prod_{j=1}^{k} (2j-1)/(2j) * cos^{2k}(theta)
    # odd df:  (2/pi) * (theta + sin(theta) cos(theta) * sum_{k=0}^{(df-3)/2} prod_{j=1}^{k} (2j)/(2j+1) cos^{2k}(theta))
    terms = (df - 2) // 2 + 1 if df % 2 == 0 else (df - 3) // 2 + 1
    j = np.arange(1, terms, dtype=np.float64)
    factors = (2 * j - 1) / (2 * j) if df % 2 == 0 else (2 * j) / (2 * j + 1)
    series = 1.0 + float(np.sum(np.cumprod(factors * c2))) if terms > 1 else 1.0
    if df % 2 == 0:
        return s * series
    return 2.0 / math.pi * (theta + s * math.sqrt(c2) * series)


def t_quantile(level: float, df: int) -> float:
    """The ``t`` with ``P(|T| < t) = level`` (two-sided; 2.3646 for level 0.95 and df 7).

    Computed exactly rather than read from a table (scipy is not a dependency of
    the harness): the closed-form distribution function for integer degrees of
    freedom, inverted by bisection on ``theta`` in ``[0, pi/2)`` to float precision.
    """
    _check_level(level)
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1; got {df}")
    low, high = 0.0, math.pi / 2
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if _t_two_sided_mass(middle, df) < level:
            low = middle
        else:
            high = middle
    return math.sqrt(df) * math.tan((low + high) / 2)


def mean_ci(values: Iterable[float], level: float = DEFAULT_LEVEL) -> tuple[float, float | None, float | None]:
    """The mean and its Student's t interval; ``(mean, None, None)`` for a single value.

    The t quantile is computed exactly (``t_quantile``), not taken from scipy or a table.
    """
    _check_level(level)
    arr = _values(values)
    mean = float(np.mean(arr))
    if arr.size == 1:
        return mean, None, None
    half = t_quantile(level, arr.size - 1) * float(np.std(arr, ddof=1)) / math.sqrt(arr.size)
    return mean, mean - half, mean + half


def wilson(successes: int, n: int, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (e.g. test accuracy over n images).

    Unlike ``p +- z sqrt(p(1-p)/n)`` it stays inside [0, 1] and is not empty at
    0 or n successes.
    """
    _check_level(level)
    if n < 1:
        raise ValueError(f"a proportion needs at least one trial; got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie between 0 and n={n}; got {successes}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def quantile_ci(values: Iterable[float], q: float, level: float = DEFAULT_LEVEL) -> Interval:
    """A distribution-free interval of the ``q`` quantile: two order statistics of the values.

    The count of values below the true quantile is Binomial(n, q), so the
    order statistics at that distribution's ``(1 - level) / 2`` and
    ``(1 + level) / 2`` points cover it with at least ``level`` probability,
    whatever the distribution of latencies (no bootstrap: its percentile of a
    tail quantile is too narrow with few values). An end the values cannot
    reach (a p99 of 100 latencies has no upper end) is None.
    """
    _check_level(level)
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must lie strictly between 0 and 1 (0.9 for a p90); got {q}")
    arr = _values(values)
    n = arr.size
    k = np.arange(n + 1, dtype=np.float64)
    log_choose = np.concatenate(([0.0], np.cumsum(np.log(n - k[1:] + 1) - np.log(k[1:]))))
    log_pmf = log_choose + k * math.log(q) + (n - k) * math.log1p(-q)
    cdf = np.cumsum(np.exp(log_pmf - log_pmf.max()))
    cdf /= cdf[-1]
    tail = (1.0 - level) / 2.0
    below = np.flatnonzero(cdf <= tail)
    above = np.flatnonzero(cdf >= 1.0 - tail)
    low = float(arr[below[-1]]) if below.size else None
    high = float(arr[above[0]]) if above.size and above[0] < n else None
    return low, high


def separated(a: Interval, b: Interval) -> bool:
    """True when the intervals ``(low, high)`` do not overlap (touching ends overlap); unknown ends never separate."""
    if None in (a[0], a[1], b[0], b[1]):
        return False
    return a[1] < b[0] or b[1] < a[0]


# -- one sentence for a set of figures -----------------------------------------------------
def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _percent(level: float) -> str:
    return f"{level * 100:g}%"


def ranking(figures: Mapping[str, Figure], higher_is_better: bool, noun: str, *,
            fmt: Callable[[float], str] = "{:.3g}".format, unit: str = "",
            level: float = DEFAULT_LEVEL) -> str:
    """One sentence saying which figure is best and whether its interval sets it apart.

    ``figures`` maps a name to ``(value, low, high)``; ``noun`` completes "is
    the ...", e.g. "fastest" or "most accurate"; ``fmt`` formats a number and
    ``unit`` follows the best one's interval. The best is "the fastest" only
    when its interval overlaps no other's; otherwise it is tied with every
    figure whose interval overlaps it. A figure without an interval cannot be
    separated from anything.
    """
    if not figures:
        return f"nothing to rank: no figure was measured, so none is the {noun}"
    unit_text = f" {unit}" if unit else ""
    order = sorted(figures, key=lambda name: (-figures[name][0] if higher_is_better else figures[name][0], name))
    best, others = order[0], order[1:]
    value, low, high = figures[best]
    if not others:
        return f"{best} is the only one measured ({fmt(value)}{unit_text}), so there is nothing to rank it against"
    interval = f"{_percent(level)} interval"
    if low is None or high is None:
        return (f"{best} has the {noun} figure ({fmt(value)}{unit_text}), but without a {interval} it "
                f"cannot be told apart from {_names(others)}")
    tied = [name for name in others if not separated((low, high), figures[name][1:])
            and None not in figures[name][1:]]
    unknown = [name for name in others if None in figures[name][1:]]
    if tied:
        sentence = f"{_names([best] + tied)} are tied for the {noun}: their {interval}s overlap"
        if unknown:
            sentence += f" ({_names(unknown)} without an interval cannot be placed)"
        return sentence
    if unknown:
        return (f"{best} has the {noun} figure ({fmt(value)}{unit_text}), but {_names(unknown)} without a "
                f"{interval} cannot be told apart from it")
    runner_up = others[0]
    _, other_low, other_high = figures[runner_up]
    side = "above" if higher_is_better else "below"
    return (f"{best} is the {noun}: its {interval} ({fmt(low)}-{fmt(high)}{unit_text}) lies {side} "
            f"{runner_up}'s ({fmt(other_low)}-{fmt(other_high)})")


BLOCK_STEPS = 10
"""Steps per block: the gate's unit of independent measurement."""


def block_medians(step_ms: Sequence[float], block: int = BLOCK_STEPS) -> list[float]:
    """The median of each run of ``block`` consecutive steps (of at least 3 blocks, else the steps).

    Consecutive steps are not independent: measured on a 2-core VM, a backend's
    step time shifts by 20-40% for tens of steps at a time (another tenant, the
    clock), so resampling single steps gives an interval far narrower than the
    run-to-run spread and raised false alarms (jax 1.21x "slower" between two
    unchanged runs). Blocks carry that drift into the interval.
    """
    blocks = [sorted(step_ms[i:i + block]) for i in range(0, len(step_ms) - block + 1, block)]
    if len(blocks) < 3:
        return list(step_ms)
    return [b[len(b) // 2] if len(b) % 2 else (b[len(b) // 2 - 1] + b[len(b) // 2]) / 2 for b in blocks]
