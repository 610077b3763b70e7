"""Specification of ``harness.scoring.calibration``: fitted on validation data, and only on it."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.scoring import calibration, metrics
from harness.scoring.ensemble import MemberOutputs, combine


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Scenario:
    """Images whose true class is drawn from ``softmax(logits)``, split into val and test.

    ``softmax(logits)`` is therefore perfectly calibrated; scaling the logits
    by 3 makes an over-confident member, by 0.3 an under-confident one.
    """

    val_logits: np.ndarray
    val_labels: np.ndarray
    test_logits: np.ndarray
    test_labels: np.ndarray


def make_scenario(seed: int = 0, n: int = 3000, k: int = 10) -> Scenario:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(2 * n, k))
    draws = rng.random((2 * n, 1))
    labels = (softmax(logits).cumsum(axis=1) > draws).argmax(axis=1)
    return Scenario(logits[:n], labels[:n], logits[n:], labels[n:])


# --- apply_temperature ------------------------------------------------------


def test_temperature_two_takes_square_roots_and_renormalises() -> None:
    # softmax(log p / 2) = sqrt(p) / sum(sqrt(p)); sqrt(0.8) / sqrt(0.2) = 2, so [2/3, 1/3]
    result = calibration.apply_temperature([[0.8, 0.2]], 2.0)
    np.testing.assert_allclose(result, [[2 / 3, 1 / 3]])


def test_temperature_half_squares_and_renormalises() -> None:
    # [0.64, 0.04] / 0.68 = [16/17, 1/17]
    result = calibration.apply_temperature([[0.8, 0.2]], 0.5)
    np.testing.assert_allclose(result, [[16 / 17, 1 / 17]])


def test_temperature_one_leaves_predictions_unchanged() -> None:
    probs = softmax(make_scenario(n=50).val_logits)
    np.testing.assert_allclose(calibration.apply_temperature(probs, 1.0), probs)


def test_a_zero_probability_is_handled_by_clipping() -> None:
    result = calibration.apply_temperature([[1.0, 0.0, 0.0]], 20.0)
    assert np.all(np.isfinite(result)) and result[0, 0] > result[0, 1] > 0


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf"), float("nan")])
def test_temperature_must_be_positive_and_finite(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        calibration.apply_temperature([[0.5, 0.5]], temperature)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, (5, 4), elements=st.floats(-10, 10)),
    st.floats(0.05, 20),
)
def test_temperature_keeps_rows_normalised_and_the_argmax(logits: np.ndarray, t: float) -> None:
    probs = softmax(logits)
    scaled = calibration.apply_temperature(probs, t)

    np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
    # the predicted class survives wherever it is not a near-tie
    top_two = np.sort(probs, axis=1)[:, -2:]
    clear = top_two[:, 1] > top_two[:, 0] * (1 + 1e-9)
    assert np.array_equal(scaled.argmax(axis=1)[clear], probs.argmax(axis=1)[clear])


# --- fit_temperature ----------------------------------------------------------


def test_fitted_temperature_makes_confidence_match_the_hit_rate() -> None:
    # Three images said 80% sure of class 0, two of them class 0: the NLL is
    # lowest when the tempered confidence is 2/3, which T = 2 gives (see above).
    probs = [[0.8, 0.2]] * 3
    assert calibration.fit_temperature(probs, [0, 0, 1]) == pytest.approx(2.0)


def test_fitted_temperature_sharpens_an_under_confident_hand_case() -> None:
    # 17 images 80% sure, 16 right: confidence 16/17 is wanted, which T = 0.5 gives
    probs = [[0.8, 0.2]] * 17
    assert calibration.fit_temperature(probs, [0] * 16 + [1]) == pytest.approx(0.5)


def test_over_confident_member_gets_temperature_above_one() -> None:
    s = make_scenario()
    t = calibration.fit_temperature(softmax(3.0 * s.val_logits), s.val_labels)
    assert t > 1.0
    assert t == pytest.approx(3.0, rel=0.1)


def test_under_confident_member_gets_temperature_below_one() -> None:
    s = make_scenario()
    t = calibration.fit_temperature(softmax(0.3 * s.val_logits), s.val_labels)
    assert t < 1.0
    assert t == pytest.approx(0.3, rel=0.1)


def test_calibrated_member_gets_temperature_near_one() -> None:
    s = make_scenario()
    assert calibration.fit_temperature(softmax(s.val_logits), s.val_labels) == pytest.approx(
        1.0, rel=0.1
    )


def test_fitted_temperature_is_a_minimum_of_validation_nll() -> None:
    s = make_scenario()
    probs = softmax(2.0 * s.val_logits)
    t = calibration.fit_temperature(probs, s.val_labels)

    def val_nll(temp: float) -> float:
        return metrics.nll(calibration.apply_temperature(probs, temp), s.val_labels)

    assert val_nll(t) <= val_nll(1.0)
    assert val_nll(t) <= val_nll(t * 1.01)
    assert val_nll(t) <= val_nll(t / 1.01)


def test_temperature_stays_within_bounds() -> None:
    # always right: NLL keeps falling as T -> 0, so the lower bound is returned
    low, high = calibration.TEMPERATURE_BOUNDS
    assert calibration.fit_temperature([[0.6, 0.4]] * 4, [0] * 4) == low
    # right half the time with 99% confidence: NLL falls as T grows, until the bound
    assert calibration.fit_temperature([[0.99, 0.01]] * 2, [0, 1]) == high


def test_uniform_predictions_get_temperature_one() -> None:
    assert calibration.fit_temperature(np.full((4, 3), 1 / 3), [0, 1, 2, 0]) == 1.0


def test_member_temperatures_are_fitted_one_by_one_on_shared_labels() -> None:
    s = make_scenario(n=500)
    members = {"over": softmax(3.0 * s.val_logits), "under": softmax(0.3 * s.val_logits)}
    fitted = calibration.fit_member_temperatures(members, s.val_labels)

    assert list(fitted) == ["over", "under"]
    assert fitted["over"] > 1.0 > fitted["under"]
    assert fitted["over"] == calibration.fit_temperature(members["over"], s.val_labels)


# --- fit_weights --------------------------------------------------------------


def test_fitted_weights_by_hand() -> None:
    # Probability each member gives the true class (class 0), over three images:
    #   member a: 0.9, 0.9, 0.1     member b: 0.1, 0.1, 0.9
    # NLL(w) = -(2 log(0.1 + 0.8 w) + log(0.9 - 0.8 w)) / 3 for w = weight of a;
    # setting the derivative to 0: 2 (0.9 - 0.8 w) = 0.1 + 0.8 w, so w = 17/24.
    a = [[0.9, 0.1], [0.9, 0.1], [0.1, 0.9]]
    b = [[0.1, 0.9], [0.1, 0.9], [0.9, 0.1]]
    weights = calibration.fit_weights([a, b], [0, 0, 0])
    assert weights == pytest.approx([17 / 24, 7 / 24], abs=1e-6)


def test_a_useless_member_gets_almost_no_weight() -> None:
    s = make_scenario()
    good = softmax(s.val_logits)
    rng = np.random.default_rng(1)
    for useless in (np.full_like(good, 0.1), rng.dirichlet(np.ones(10), size=len(good))):
        weights = calibration.fit_weights([good, useless], s.val_labels)
        assert weights[1] < 0.02
        assert weights.sum() == pytest.approx(1.0)


def test_fitted_weights_lie_on_the_simplex_and_beat_uniform_weights() -> None:
    s = make_scenario()
    members = [softmax(s.val_logits), softmax(3.0 * s.val_logits), np.full((3000, 10), 0.1)]
    weights = calibration.fit_weights(members, s.val_labels)

    def val_nll(w: np.ndarray) -> float:
        return metrics.nll(np.tensordot(w, np.stack(members), axes=1), s.val_labels)

    assert np.all(weights >= 0) and weights.sum() == pytest.approx(1.0)
    assert val_nll(weights) <= val_nll(np.full(3, 1 / 3))
    assert val_nll(weights) <= val_nll(np.array([1.0, 0.0, 0.0])) + 1e-9


def test_identical_members_share_the_weight_equally() -> None:
    s = make_scenario(n=200)
    probs = softmax(s.val_logits)
    assert calibration.fit_weights([probs, probs], s.val_labels) == pytest.approx([0.5, 0.5])


def test_a_single_member_gets_all_the_weight() -> None:
    s = make_scenario(n=200)
    assert calibration.fit_weights([softmax(s.val_logits)], s.val_labels).tolist() == [1.0]


def test_fitting_is_deterministic() -> None:
    s = make_scenario()
    members = [softmax(s.val_logits), softmax(0.5 * s.val_logits)]
    first = calibration.fit_weights(members, s.val_labels)
    assert np.array_equal(first, calibration.fit_weights(members, s.val_labels))
    t = calibration.fit_temperature(members[1], s.val_labels)
    assert t == calibration.fit_temperature(members[1], s.val_labels)


# --- no test data in any fit ----------------------------------------------------


def fit_as_the_harness_does(s: Scenario) -> tuple[dict[str, float], np.ndarray]:
    """The protocol: temperatures and weights are fitted on the validation split only."""
    val = {"over": softmax(3.0 * s.val_logits), "under": softmax(0.5 * s.val_logits)}
    temperatures = calibration.fit_member_temperatures(val, s.val_labels)
    weights = calibration.fit_weights(list(val.values()), s.val_labels)
    return temperatures, weights


def test_fits_cannot_see_test_data() -> None:
    # Every fitting function takes validation predictions and labels, nothing else.
    fits = (
        calibration.fit_temperature,
        calibration.fit_member_temperatures,
        calibration.fit_weights,
    )
    for fit in fits:
        data_params = [p for p in inspect.signature(fit).parameters if p not in ("tol", "eps")]
        assert data_params[0].endswith("val_probs") and data_params[1] == "val_labels"
        assert len(data_params) == 2

    # So scrambling the test split's labels moves nothing that was fitted.
    s = make_scenario()
    scrambled = replace(s, test_labels=(s.test_labels + 1) % 10)
    temperatures, weights = fit_as_the_harness_does(s)
    temperatures_after, weights_after = fit_as_the_harness_does(scrambled)

    assert temperatures_after == temperatures
    assert np.array_equal(weights_after, weights)


def test_combine_fits_weights_on_validation_data_even_though_it_holds_test_data() -> None:
    s = make_scenario(n=1000)

    def members(test_scale: float) -> dict[str, MemberOutputs]:
        return {
            name: MemberOutputs(
                test_probs=softmax(test_scale * scale * s.test_logits),
                val_probs=softmax(scale * s.val_logits),
                val_labels=s.val_labels,
            )
            for name, scale in (("sharp", 3.0), ("soft", 0.5))
        }

    for method in ("fitted", "val-accuracy"):
        before = combine(method, members(test_scale=1.0))
        after = combine(method, members(test_scale=0.1))  # very different test predictions
        assert after.weights == before.weights
