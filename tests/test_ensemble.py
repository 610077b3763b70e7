"""Specification of ``harness.scoring.ensemble``: the seed's weighted vote and its alternatives."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.scoring import calibration, ensemble
from harness.scoring.ensemble import MemberOutputs, combine

# --- weighted_soft_vote ---------------------------------------------------------


def test_soft_vote_by_hand() -> None:
    # image 0: members say class 0 and class 1 for sure; weights 3:1 -> 0.75 / 0.25
    # image 1: both say 50/50 -> 50/50 whatever the weights
    a = [[1.0, 0.0], [0.5, 0.5]]
    b = [[0.0, 1.0], [0.5, 0.5]]
    result = ensemble.weighted_soft_vote([a, b], [3.0, 1.0])
    np.testing.assert_allclose(result, [[0.75, 0.25], [0.5, 0.5]])


def test_a_zero_weight_member_is_ignored() -> None:
    a, b = [[0.9, 0.1]], [[0.2, 0.8]]
    np.testing.assert_allclose(ensemble.weighted_soft_vote([a, b], [0.7, 0.0]), a)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0, -0.5], "non-negative"),
        ([0.0, 0.0], "positive sum"),
        ([1.0], r"shape \(2,\), one per member"),
        ([1.0, float("nan")], "finite"),
    ],
)
def test_bad_weights_are_rejected(weights: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ensemble.weighted_soft_vote([[[0.5, 0.5]], [[0.5, 0.5]]], weights)


def test_members_of_different_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="disagree on shape"):
        ensemble.weighted_soft_vote([[[0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]]], [1, 1])


@st.composite
def members_and_weights(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Member predictions ``[m, n, k]`` (softmax of random logits) and positive weights ``[m]``."""
    m, n, k = draw(st.integers(1, 4)), draw(st.integers(1, 10)), draw(st.integers(2, 5))
    logits = draw(arrays(np.float64, (m, n, k), elements=st.floats(-6, 6)))
    probs = np.exp(logits - logits.max(axis=2, keepdims=True))
    probs /= probs.sum(axis=2, keepdims=True)
    weights = draw(arrays(np.float64, m, elements=st.floats(0.01, 10)))
    return probs, weights


property_settings = settings(max_examples=60, deadline=None)


@property_settings
@given(members_and_weights())
def test_ensemble_rows_stay_normalised(case: tuple[np.ndarray, np.ndarray]) -> None:
    probs, weights = case
    result = ensemble.weighted_soft_vote(probs, weights)
    assert result.shape == probs.shape[1:]
    assert np.all(result >= 0)
    np.testing.assert_allclose(result.sum(axis=1), 1.0)


@property_settings
@given(members_and_weights(), st.floats(1e-3, 1e3))
def test_scaling_all_weights_gives_the_same_ensemble(
    case: tuple[np.ndarray, np.ndarray], factor: float
) -> None:
    probs, weights = case
    np.testing.assert_allclose(
        ensemble.weighted_soft_vote(probs, factor * weights),
        ensemble.weighted_soft_vote(probs, weights),
    )


@property_settings
@given(members_and_weights())
def test_a_one_member_ensemble_is_that_member(case: tuple[np.ndarray, np.ndarray]) -> None:
    probs, weights = case
    np.testing.assert_allclose(ensemble.weighted_soft_vote(probs[:1], weights[:1]), probs[0])
    assert combine("seed", {"only": MemberOutputs(probs[0], train_accuracy=0.3)}).probs == (
        pytest.approx(probs[0])
    )


# --- weighted_contributions -------------------------------------------------------


@property_settings
@given(members_and_weights())
def test_member_contributions_add_up_to_the_ensemble(case: tuple[np.ndarray, np.ndarray]) -> None:
    probs, weights = case
    parts = ensemble.weighted_contributions(probs, weights)
    assert parts.shape == probs.shape
    np.testing.assert_allclose(parts.sum(axis=0), ensemble.weighted_soft_vote(probs, weights))


def test_contributions_are_the_seeds_displayed_rows_divided_by_the_weight_total() -> None:
    # The seed printed w_i * p_i; our rows are w_i * p_i / sum(w).
    p = np.array([[[0.6, 0.4]], [[0.2, 0.8]]])
    w = np.array([0.785, 0.771])
    parts = ensemble.weighted_contributions(p, w)
    np.testing.assert_allclose(parts * w.sum(), w[:, None, None] * p)


# --- majority_vote ------------------------------------------------------------------


def test_majority_vote_is_the_fraction_of_members_per_predicted_class() -> None:
    # three members predict 0, 0, 2 on one image
    members = [[[0.6, 0.3, 0.1]], [[0.5, 0.1, 0.4]], [[0.1, 0.2, 0.7]]]
    np.testing.assert_allclose(ensemble.majority_vote(members), [[2 / 3, 0.0, 1 / 3]])


def test_majority_tie_goes_to_the_class_with_more_summed_probability() -> None:
    # two members split 0 vs 1; summed probabilities: class 0 = 0.55 + 0.30,
    # class 1 = 0.45 + 0.70, so class 1 wins the tie
    members = [[[0.55, 0.45]], [[0.30, 0.70]]]
    result = ensemble.majority_vote(members)

    assert result.argmax(axis=1).tolist() == [1]
    np.testing.assert_allclose(result, [[0.5, 0.5]], atol=ensemble.MAJORITY_TIE_NUDGE)
    np.testing.assert_allclose(result.sum(axis=1), 1.0)


def test_an_exact_majority_tie_goes_to_the_lower_class_index() -> None:
    members = [[[0.6, 0.4, 0.0]], [[0.4, 0.6, 0.0]]]
    assert ensemble.majority_vote(members).argmax(axis=1).tolist() == [0]


@property_settings
@given(members_and_weights())
def test_majority_vote_returns_valid_probabilities(case: tuple[np.ndarray, np.ndarray]) -> None:
    probs, _ = case
    m, _, k = probs.shape
    result = ensemble.majority_vote(probs)

    assert result.shape == probs.shape[1:] and np.all(result >= 0)
    np.testing.assert_allclose(result.sum(axis=1), 1.0)
    for image, row in enumerate(result):
        fractions = np.bincount(probs[:, image].argmax(axis=1), minlength=k) / m
        # the vote fractions, up to the tie nudge, and the winner has the most votes
        np.testing.assert_allclose(row, fractions, atol=ensemble.MAJORITY_TIE_NUDGE)
        assert fractions[row.argmax()] == fractions.max()


# --- combine ---------------------------------------------------------------------------

# Two images, two classes; validation split of three images (labels 0, 1, 1).
VAL_LABELS = np.array([0, 1, 1])
SHARP = MemberOutputs(
    test_probs=np.array([[0.9, 0.1], [0.2, 0.8]]),
    train_accuracy=0.8,
    val_probs=np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]),  # 3 of 3 right
    val_labels=VAL_LABELS,
)
DULL = MemberOutputs(
    test_probs=np.array([[0.6, 0.4], [0.6, 0.4]]),
    train_accuracy=0.2,
    val_probs=np.array([[0.6, 0.4], [0.6, 0.4], [0.4, 0.6]]),  # 2 of 3 right
    val_labels=VAL_LABELS,
)
MEMBERS = {"sharp": SHARP, "dull": DULL}


def test_seed_method_weights_members_by_training_accuracy() -> None:
    out = combine("seed", MEMBERS)

    assert out.method == "seed" and out.members == ("sharp", "dull")
    assert out.weights == pytest.approx({"sharp": 0.8, "dull": 0.2})
    np.testing.assert_allclose(out.probs, 0.8 * SHARP.test_probs + 0.2 * DULL.test_probs)
    assert ensemble.DEFAULT_METHOD == "seed"


def test_uniform_method_weights_members_equally() -> None:
    out = combine("uniform", MEMBERS)
    assert out.weights == {"sharp": 0.5, "dull": 0.5}
    np.testing.assert_allclose(out.probs, [[0.75, 0.25], [0.4, 0.6]])


def test_val_accuracy_method_weights_by_accuracy_on_the_validation_split() -> None:
    # validation accuracies 3/3 and 2/3 -> weights 3/5 and 2/5
    out = combine("val-accuracy", MEMBERS)
    assert out.weights == pytest.approx({"sharp": 0.6, "dull": 0.4})


def test_fitted_method_uses_weights_fitted_on_validation_nll() -> None:
    out = combine("fitted", MEMBERS)
    fitted = calibration.fit_weights([SHARP.val_probs, DULL.val_probs], VAL_LABELS)
    assert list(out.weights.values()) == pytest.approx(fitted.tolist())


def test_majority_method_gives_each_member_one_vote() -> None:
    out = combine("majority", MEMBERS)
    assert out.weights == {"sharp": 0.5, "dull": 0.5}
    np.testing.assert_allclose(
        out.probs, ensemble.majority_vote([SHARP.test_probs, DULL.test_probs])
    )


def test_every_method_returns_normalised_weights_and_probabilities() -> None:
    for method in ensemble.METHODS:
        out = combine(method, MEMBERS)
        assert sum(out.weights.values()) == pytest.approx(1.0)
        np.testing.assert_allclose(out.probs.sum(axis=1), 1.0)


def test_unknown_method_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown ensemble method 'mean'; choose from seed, "):
        combine("mean", MEMBERS)


@pytest.mark.parametrize(
    ("method", "missing"),
    [("seed", "train_accuracy"), ("val-accuracy", "val_probs"), ("fitted", "val_probs")],
)
def test_a_member_missing_an_input_is_named(method: str, missing: str) -> None:
    bare = MemberOutputs(test_probs=SHARP.test_probs)
    with pytest.raises(ValueError, match=f"method '{method}' needs {missing} .* missing for bare"):
        combine(method, {"sharp": SHARP, "bare": bare})


def test_missing_validation_labels_are_named() -> None:
    no_labels = MemberOutputs(SHARP.test_probs, val_probs=SHARP.val_probs)
    with pytest.raises(ValueError, match="needs val_labels .* missing for nolabels"):
        combine("val-accuracy", {"nolabels": no_labels, "dull": DULL})


def test_members_must_share_one_validation_split() -> None:
    other_split = MemberOutputs(DULL.test_probs, val_probs=DULL.val_probs, val_labels=[0, 0, 1])
    with pytest.raises(ValueError, match="val_labels of other differ from sharp's"):
        combine("fitted", {"sharp": SHARP, "other": other_split})


def test_members_must_predict_the_same_test_images() -> None:
    short = MemberOutputs(test_probs=SHARP.test_probs[:1], train_accuracy=0.5)
    with pytest.raises(ValueError, match=r"test_probs of short has shape \(1, 2\)"):
        combine("uniform", {"sharp": SHARP, "short": short})


def test_weights_that_cannot_be_normalised_name_the_method() -> None:
    hopeless = MemberOutputs(SHARP.test_probs, train_accuracy=0.0)
    with pytest.raises(ValueError, match="method 'seed' gave unusable weights: .*positive sum"):
        combine("seed", {"a": hopeless, "b": hopeless})


def test_an_empty_ensemble_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        combine("uniform", {})


# --- rescue_analysis -----------------------------------------------------------------------


def test_rescue_analysis_counts_the_seeds_observation_and_its_converse() -> None:
    # Three members, five images, true class 0 everywhere; "R" right, "w" wrong.
    #   image  members  ensemble  case
    #   0      w w w    R         right while all members wrong
    #   1      R w w    R         right while the majority is wrong
    #   2      R R w    w         wrong while the majority is right
    #   3      R R R    R         nothing special
    #   4      w w w    R         right while all members wrong
    right, wrong = [0.9, 0.1], [0.1, 0.9]
    members = {
        "a": [wrong, right, right, right, wrong],
        "b": [wrong, wrong, right, right, wrong],
        "c": [wrong, wrong, wrong, right, wrong],
    }
    ens = [right, right, wrong, right, right]
    report = ensemble.rescue_analysis(members, ens, [0] * 5)

    assert report == {
        "n_images": 5,
        "n_members": 3,
        "n_ensemble_right_all_members_wrong": 2,
        "indices_ensemble_right_all_members_wrong": [0, 4],
        "n_ensemble_right_majority_wrong": 3,
        "indices_ensemble_right_majority_wrong": [0, 1, 4],
        "n_ensemble_wrong_majority_right": 1,
        "indices_ensemble_wrong_majority_right": [2],
    }
    assert json.loads(json.dumps(report)) == report

    capped = ensemble.rescue_analysis(members, ens, [0] * 5, max_examples=1)
    assert capped["indices_ensemble_right_majority_wrong"] == [0]
    assert capped["n_ensemble_right_majority_wrong"] == 3


def test_rescue_analysis_rejects_a_mismatched_ensemble() -> None:
    with pytest.raises(ValueError, match="members have shape"):
        ensemble.rescue_analysis({"a": [[0.5, 0.5]]}, [[0.5, 0.5], [0.5, 0.5]], [0, 1])
