"""How sure a figure is (``harness.scoring.intervals``): known answers, then properties any data must keep."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.scoring.intervals import (
    Summary,
    bootstrap_ci,
    mean_ci,
    ranking,
    ratio_of_medians,
    separated,
    summarise,
    t_quantile,
    wilson,
)

# Times in milliseconds, as a benchmark measures them: positive, neither tiny nor huge.
times = st.lists(st.floats(min_value=0.01, max_value=1e4, allow_nan=False, allow_infinity=False),
                 min_size=2, max_size=60)


# -- known answers -------------------------------------------------------------------------
def test_median_and_quartiles_of_a_small_list_interpolate_linearly():
    s = summarise([4.0, 1.0, 3.0, 2.0])
    assert (s.n, s.median, s.q1, s.q3, s.iqr) == (4, 2.5, 1.75, 3.25, 1.5)
    assert summarise([5.0, 1.0, 3.0]).median == 3.0


def test_a_summary_serialises_every_field():
    s = summarise([1.0, 2.0, 3.0])
    assert set(s.to_json()) == {"n", "median", "q1", "q3", "iqr", "ci_low", "ci_high"}
    assert Summary(**s.to_json()) == s


def test_one_value_has_a_median_but_no_interval():
    s = summarise([7.0])
    assert (s.median, s.iqr, s.ci_low, s.ci_high) == (7.0, 0.0, None, None)
    assert mean_ci([7.0]) == (7.0, None, None)


def test_wilson_interval_matches_the_textbook_example():
    low, high = wilson(81, 263)  # 81 successes of 263 at 95%: (0.2553, 0.3662)
    assert low == pytest.approx(0.2553, abs=1e-4)
    assert high == pytest.approx(0.3662, abs=1e-4)


def test_wilson_interval_is_not_empty_at_none_or_all_correct():
    assert wilson(0, 10)[0] == 0.0 and wilson(0, 10)[1] > 0.2
    assert wilson(10, 10)[1] == 1.0 and wilson(10, 10)[0] < 0.8


def test_t_interval_of_a_known_list_matches_the_hand_computation():
    # mean 5, sample sd sqrt(32/7), t(0.975, 7 df) = 2.364624: half-width 2.364624 * 2.13809 / sqrt(8)
    mean, low, high = mean_ci([2, 4, 4, 4, 5, 5, 7, 9])
    assert mean == 5.0
    assert (low, high) == (pytest.approx(3.212512, abs=1e-6), pytest.approx(6.787488, abs=1e-6))


@pytest.mark.parametrize("level, df, expected", [
    (0.95, 1, 12.706205), (0.95, 2, 4.302653), (0.95, 7, 2.364624), (0.95, 30, 2.042272),
    (0.99, 10, 3.169273), (0.90, 4, 2.131847), (0.95, 1000, 1.962339),
])
def test_t_quantiles_match_the_printed_tables(level, df, expected):
    assert t_quantile(level, df) == pytest.approx(expected, abs=1e-6)


def test_the_bootstrap_interval_of_a_constant_sample_is_that_constant():
    assert bootstrap_ci([3.5] * 40) == (3.5, 3.5)
    s = summarise([3.5] * 40)
    assert (s.ci_low, s.ci_high) == (3.5, 3.5)


def test_the_median_interval_of_a_normal_sample_covers_the_true_median_and_shrinks_with_more_data():
    rng = np.random.default_rng(42)
    small = bootstrap_ci(rng.normal(10.0, 2.0, size=200))
    large = bootstrap_ci(rng.normal(10.0, 2.0, size=5000))
    assert small[0] < 10.0 < small[1] and large[0] < 10.0 < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 2


def test_the_same_data_gives_the_same_interval_and_another_seed_a_slightly_different_one():
    values = np.random.default_rng(1).lognormal(size=100)
    assert bootstrap_ci(values) == bootstrap_ci(values)
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values)


def test_any_statistic_that_takes_an_axis_can_be_bootstrapped():
    values = np.random.default_rng(3).normal(5.0, 1.0, size=300)
    low, high = bootstrap_ci(values, statistic=np.mean)
    assert low < 5.0 < high
    # the median's fast path gives what numpy's median of the same resamples gives
    assert bootstrap_ci(values, statistic=lambda x, axis: np.median(x, axis=axis)) == bootstrap_ci(values)


def test_a_ratio_of_medians_finds_a_25_percent_slowdown():
    rng = np.random.default_rng(5)
    base = rng.lognormal(np.log(20.0), 0.1, size=120)
    ratio, low, high = ratio_of_medians(base, rng.lognormal(np.log(25.0), 0.1, size=120))
    assert low < 1.25 < high and low > 1.15 and ratio == pytest.approx(1.25, abs=0.05)


@pytest.mark.parametrize("call, message", [
    (lambda: summarise([]), "at least 1 value"),
    (lambda: bootstrap_ci([1.0]), "at least 2 value"),
    (lambda: summarise([1.0, float("nan")]), "NaN"),
    (lambda: ratio_of_medians([0.0, 0.0], [1.0, 2.0]), "positive medians"),
    (lambda: wilson(11, 10), "between 0 and n=10"),
    (lambda: wilson(0, 0), "at least one trial"),
    (lambda: mean_ci([1.0, 2.0], level=95), "strictly between 0 and 1"),
])
def test_bad_input_is_a_value_error_saying_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- properties ------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(times)
def test_the_median_lies_inside_its_interval_and_the_quartiles_around_it(values):
    s = summarise(values)
    assert s.ci_low <= s.median <= s.ci_high
    assert s.q1 <= s.median <= s.q3


@settings(max_examples=60, deadline=None)
@given(times, st.randoms(use_true_random=False))
def test_intervals_do_not_depend_on_the_order_of_the_values(values, random):
    shuffled = list(values)
    random.shuffle(shuffled)
    assert summarise(shuffled) == summarise(values)
    assert ratio_of_medians(shuffled, values[::-1]) == ratio_of_medians(values, values)


@settings(max_examples=60, deadline=None)
@given(times, st.floats(min_value=1e-3, max_value=1e3))
def test_scaling_every_value_scales_the_interval(values, c):
    low, high = bootstrap_ci(values)
    scaled_low, scaled_high = bootstrap_ci([v * c for v in values])
    assert scaled_low == pytest.approx(low * c, rel=1e-9)
    assert scaled_high == pytest.approx(high * c, rel=1e-9)
    mean, m_low, m_high = mean_ci(values)
    assert mean_ci([v * c for v in values]) == pytest.approx((mean * c, m_low * c, m_high * c), rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(times)
def test_a_sample_against_itself_brackets_a_ratio_of_one(values):
    ratio, low, high = ratio_of_medians(values, values)
    assert ratio == 1.0 and low <= 1.0 <= high


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=100_000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))))
def test_wilson_bounds_lie_in_0_1_and_contain_the_observed_proportion(case):
    k, n = case
    low, high = wilson(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0


@settings(max_examples=60, deadline=None)
@given(times)
def test_a_t_interval_contains_the_mean_and_is_wider_at_99_than_at_95(values):
    mean, low, high = mean_ci(values)
    _, low99, high99 = mean_ci(values, level=0.99)
    assert low99 <= low <= mean <= high <= high99


# -- separation and ranking ------------------------------------------------------------------
@pytest.mark.parametrize("a, b, expected", [
    ((1.0, 2.0), (3.0, 4.0), True),
    ((3.0, 4.0), (1.0, 2.0), True),
    ((1.0, 3.0), (2.0, 4.0), False),
    ((1.0, 2.0), (2.0, 3.0), False),  # touching ends overlap
    ((1.0, 2.0), (None, None), False),  # no interval: cannot be separated
])
def test_intervals_are_separated_only_when_they_do_not_overlap(a, b, expected):
    assert separated(a, b) is expected


def img_per_s(value: float) -> str:
    return f"{value:.0f}"


def test_a_best_figure_clear_of_the_others_is_named_with_both_intervals():
    figures = {"torch": (730.0, 700.0, 760.0), "tensorflow": (970.0, 950.0, 990.0), "jax": (500.0, 480.0, 520.0)}
    assert ranking(figures, True, "fastest", fmt=img_per_s, unit="img/s") == (
        "tensorflow is the fastest: its 95% interval (950-990 img/s) lies above torch's (700-760)")


def test_when_lower_is_better_the_best_interval_lies_below():
    figures = {"jax": (2.2, 2.1, 2.3), "torch": (12.7, 12.5, 12.9)}
    assert ranking(figures, False, "fastest", unit="ms") == (
        "jax is the fastest: its 95% interval (2.1-2.3 ms) lies below torch's (12.5-12.9)")


def test_overlapping_intervals_are_a_tie_naming_every_overlapping_figure():
    figures = {"tensorflow": (0.61, 0.58, 0.64), "torch": (0.60, 0.57, 0.63), "jax": (0.59, 0.56, 0.62),
               "theano": (0.40, 0.37, 0.43)}
    assert ranking(figures, True, "most accurate") == (
        "tensorflow, torch and jax are tied for the most accurate: their 95% intervals overlap")


def test_a_wide_interval_further_down_still_ties_with_the_best():
    figures = {"a": (10.0, 9.5, 10.5), "b": (8.0, 7.8, 8.2), "c": (7.0, 2.0, 12.0)}
    assert ranking(figures, True, "fastest") == "a and c are tied for the fastest: their 95% intervals overlap"


def test_a_single_figure_has_nothing_to_rank_against():
    assert ranking({"jax": (1200.0, 1100.0, 1300.0)}, True, "fastest", fmt=img_per_s, unit="img/s") == (
        "jax is the only one measured (1200 img/s), so there is nothing to rank it against")


def test_no_figures_say_so():
    assert ranking({}, True, "fastest") == "nothing to rank: no figure was measured, so none is the fastest"


def test_figures_without_intervals_cannot_be_told_apart():
    figures = {"jax": (1200.0, None, None), "torch": (300.0, None, None)}
    assert ranking(figures, True, "fastest", fmt=img_per_s, unit="img/s") == (
        "jax has the fastest figure (1200 img/s), but without a 95% interval it cannot be told apart from torch")
    with_one = {"jax": (1200.0, 1100.0, 1300.0), "torch": (300.0, None, None)}
    assert "torch without a 95% interval cannot be told apart from it" in ranking(with_one, True, "fastest")
