"""Specification of ``harness.scoring.metrics``: hand-worked cases first, then properties."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.scoring import metrics

# Three images, two classes; worked by hand below.
#   image  probs         label  predicted  confidence  right?
#   0      [0.90, 0.10]  0      0          0.90        yes
#   1      [0.65, 0.35]  1      0          0.65        no
#   2      [0.30, 0.70]  1      1          0.70        yes
PROBS = np.array([[0.9, 0.1], [0.65, 0.35], [0.3, 0.7]])
LABELS = np.array([0, 1, 1])


def test_accuracy_counts_top1_hits() -> None:
    assert metrics.accuracy(PROBS, LABELS) == pytest.approx(2 / 3)


def test_nll_is_mean_minus_log_of_true_class_probability() -> None:
    # true-class probabilities 0.9, 0.35, 0.7
    expected = -(math.log(0.9) + math.log(0.35) + math.log(0.7)) / 3  # = 0.50395
    assert metrics.nll(PROBS, LABELS) == pytest.approx(expected)


def test_nll_clips_a_zero_probability_to_eps() -> None:
    assert metrics.nll([[1.0, 0.0]], [1], eps=1e-12) == pytest.approx(-math.log(1e-12))


def test_brier_sums_squared_errors_over_classes_and_averages_over_images() -> None:
    # image 0: (0.9-1)^2 + 0.1^2 = 0.02;  image 1: 0.65^2 + (0.35-1)^2 = 0.845
    # image 2: 0.3^2 + (0.7-1)^2 = 0.18;  mean = 1.045 / 3
    assert metrics.brier_score(PROBS, LABELS) == pytest.approx(1.045 / 3)


def test_ece_with_each_image_in_its_own_bin() -> None:
    # 15 bins of width 1/15: 0.90 -> (0.867, 0.933], 0.65 -> (0.600, 0.667],
    # 0.70 -> (0.667, 0.733]. One image per bin, so ECE = mean |right - conf|
    # = (|1 - 0.9| + |0 - 0.65| + |1 - 0.7|) / 3 = 1.05 / 3 = 0.35
    assert metrics.expected_calibration_error(PROBS, LABELS) == pytest.approx(0.35)


def test_ece_with_all_images_in_one_bin() -> None:
    # 2 bins: all confidences are in (0.5, 1]; accuracy 2/3, mean confidence
    # (0.9 + 0.65 + 0.7) / 3 = 0.75, so ECE = |2/3 - 0.75| = 1/12
    assert metrics.expected_calibration_error(PROBS, LABELS, n_bins=2) == pytest.approx(1 / 12)


def test_ece_of_a_perfectly_calibrated_construction_is_zero() -> None:
    # 10 images said 80% sure, 8 of them right; 10 said 60% sure, 6 right.
    probs = np.array([[0.8, 0.2]] * 10 + [[0.6, 0.4]] * 10)
    labels = np.array([0] * 8 + [1] * 2 + [0] * 6 + [1] * 4)
    assert metrics.expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)


def test_reliability_bins_hold_per_bin_counts_confidence_and_accuracy() -> None:
    bins = metrics.reliability_bins(PROBS, LABELS)

    np.testing.assert_allclose(bins.edges, np.linspace(0, 1, 16))
    assert bins.counts.tolist() == [0] * 9 + [1, 1, 0, 0, 1, 0]
    assert bins.mean_confidence[[9, 10, 13]] == pytest.approx([0.65, 0.7, 0.9])
    assert bins.accuracy[[9, 10, 13]] == pytest.approx([0.0, 1.0, 1.0])
    assert np.isnan(bins.accuracy[0]) and np.isnan(bins.mean_confidence[0])


def test_reliability_bins_serialise_empty_bins_as_none() -> None:
    as_dict = metrics.reliability_bins(PROBS, LABELS, n_bins=2).to_dict()

    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["counts"] == [0, 3]
    assert as_dict["accuracy"][0] is None
    assert as_dict["accuracy"][1] == pytest.approx(2 / 3)


def test_confidence_exactly_on_an_edge_goes_to_the_lower_bin() -> None:
    # bins are (lo, hi]: 0.5 belongs to the first of two bins
    assert metrics.reliability_bins([[0.5, 0.5]], [0], n_bins=2).counts.tolist() == [1, 0]


def test_per_class_accuracy_is_recall_per_true_class() -> None:
    # class 0: image 0 right -> 1.0; class 1: image 1 wrong, image 2 right -> 0.5
    assert metrics.per_class_accuracy(PROBS, LABELS, 2).tolist() == [1.0, 0.5]


def test_per_class_accuracy_is_nan_for_a_class_without_images() -> None:
    result = metrics.per_class_accuracy([[0.2, 0.3, 0.5]], [2], 3)
    assert np.isnan(result[0]) and np.isnan(result[1]) and result[2] == 1.0


def test_confusion_matrix_is_indexed_true_then_predicted() -> None:
    # (true 0, pred 0), (true 1, pred 0), (true 1, pred 1)
    expected = [[1, 0], [1, 1]]
    assert metrics.confusion_matrix(PROBS, LABELS, 2).tolist() == expected
    assert metrics.confusion_matrix(np.array([0, 0, 1]), LABELS, 2).tolist() == expected


def test_confusion_matrix_needs_n_classes_for_class_predictions() -> None:
    with pytest.raises(ValueError, match="n_classes is required"):
        metrics.confusion_matrix(np.array([0, 1]), [0, 1])


def test_disagreement_is_the_fraction_of_differing_argmaxes() -> None:
    other = np.array([[0.2, 0.8], [0.6, 0.4], [0.4, 0.6]])  # predicts 1, 0, 1 vs 0, 0, 1
    assert metrics.disagreement_rate(PROBS, other) == pytest.approx(1 / 3)


def test_kl_divergence_by_hand() -> None:
    p, q = [[0.5, 0.5]], [[0.25, 0.75]]
    # KL(p||q) = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln(4/3)
    assert metrics.mean_kl_divergence(p, q) == pytest.approx(0.5 * math.log(4 / 3))
    # KL(q||p) = 0.25 ln(0.25/0.5) + 0.75 ln(0.75/0.5)
    expected_reverse = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert metrics.mean_kl_divergence(q, p) == pytest.approx(expected_reverse)


def test_kl_divergence_ignores_classes_p_rules_out_and_clips_q() -> None:
    assert metrics.mean_kl_divergence([[1.0, 0.0]], [[0.5, 0.5]]) == pytest.approx(math.log(2))
    ruled_out = metrics.mean_kl_divergence([[0.5, 0.5]], [[1.0, 0.0]], eps=1e-12)
    assert ruled_out == pytest.approx(0.5 * math.log(0.5) + 0.5 * math.log(0.5 / 1e-12))


def test_pairwise_reports_each_unordered_pair_once_with_both_kl_directions() -> None:
    p, q = np.array([[0.5, 0.5]]), np.array([[0.25, 0.75]])
    result = metrics.pairwise({"a": p, "b": q, "c": p})

    assert list(result) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert result["a", "b"]["kl_ab"] == pytest.approx(metrics.mean_kl_divergence(p, q))
    assert result["a", "b"]["kl_ba"] == pytest.approx(metrics.mean_kl_divergence(q, p))
    assert result["a", "c"] == {"disagreement": 0.0, "kl_ab": 0.0, "kl_ba": 0.0}
    assert result["a", "b"]["disagreement"] == 1.0


def test_summary_is_a_json_ready_report_row() -> None:
    row = metrics.summary(PROBS, LABELS)

    assert row == {
        "accuracy": pytest.approx(2 / 3),
        "nll": pytest.approx(metrics.nll(PROBS, LABELS)),
        "ece": pytest.approx(0.35),
        "brier": pytest.approx(1.045 / 3),
    }
    assert all(type(v) is float for v in row.values())
    assert json.loads(json.dumps(row)) == row


@pytest.mark.parametrize(
    ("probs", "labels", "message"),
    [
        (np.array([0.5, 0.5]), [0], "2-D array"),
        (PROBS, [0, 1], "has 2 entries but the predictions have 3"),
        (PROBS, [[0, 1, 1]], "1-D array"),
        (PROBS, [0, 2, 1], r"must lie in \[0, 2\)"),
        (PROBS, [0.0, 1.0, 1.0], "integer class indices"),
        ([[2.0, -1.0]], [0], "negative values; pass probabilities, not logits"),
        ([[2.0, 3.0]], [0], "rows must sum to 1"),
        ([[np.nan, 1.0]], [0], "NaN"),
        (np.zeros((0, 2)), [], "at least one image"),
    ],
)
def test_bad_inputs_are_rejected_with_a_clear_message(probs, labels, message) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.accuracy(probs, labels)


def test_comparing_predictions_of_different_shapes_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"probs_a has shape \(3, 2\) but probs_b has \(1, 2\)"):
        metrics.disagreement_rate(PROBS, [[0.5, 0.5]])


# --- properties -----------------------------------------------------------


def softmax_of(draw: st.DrawFn, n: int, k: int) -> np.ndarray:
    logits = draw(arrays(np.float64, (n, k), elements=st.floats(-8, 8)))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


@st.composite
def probs_and_labels(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """A softmax of random logits, ``[n, k]``, with random labels."""
    n, k = draw(st.integers(1, 30)), draw(st.integers(2, 6))
    labels = draw(arrays(np.int64, n, elements=st.integers(0, k - 1)))
    return softmax_of(draw, n, k), labels


@st.composite
def two_predictions(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two softmax arrays of the same random shape."""
    n, k = draw(st.integers(1, 30)), draw(st.integers(2, 6))
    return softmax_of(draw, n, k), softmax_of(draw, n, k)


property_settings = settings(max_examples=60, deadline=None)


@property_settings
@given(probs_and_labels())
def test_scores_stay_in_their_ranges(case: tuple[np.ndarray, np.ndarray]) -> None:
    probs, labels = case
    assert 0.0 <= metrics.accuracy(probs, labels) <= 1.0
    assert metrics.nll(probs, labels) >= 0.0
    assert 0.0 <= metrics.expected_calibration_error(probs, labels) <= 1.0
    assert 0.0 <= metrics.brier_score(probs, labels) <= 2.0


@property_settings
@given(probs_and_labels())
def test_a_perfect_one_hot_prediction_scores_perfectly(case: tuple[np.ndarray, np.ndarray]) -> None:
    probs, labels = case
    onehot = np.eye(probs.shape[1])[labels]
    assert metrics.accuracy(onehot, labels) == 1.0
    assert metrics.brier_score(onehot, labels) == 0.0
    assert metrics.nll(onehot, labels) == 0.0
    assert metrics.expected_calibration_error(onehot, labels) == 0.0


@property_settings
@given(probs_and_labels())
def test_confusion_and_per_class_views_agree_with_accuracy(
    case: tuple[np.ndarray, np.ndarray],
) -> None:
    probs, labels = case
    k = probs.shape[1]
    confusion = metrics.confusion_matrix(probs, labels, k)
    per_class = metrics.per_class_accuracy(probs, labels, k)
    counts = np.bincount(labels, minlength=k)

    assert confusion.sum() == len(labels)
    assert confusion.sum(axis=1).tolist() == counts.tolist()
    assert np.trace(confusion) / len(labels) == pytest.approx(metrics.accuracy(probs, labels))
    assert np.nansum(per_class * counts) / len(labels) == pytest.approx(
        metrics.accuracy(probs, labels)
    )


@property_settings
@given(two_predictions())
def test_kl_is_zero_against_itself_and_never_negative(pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pair
    assert metrics.mean_kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert metrics.mean_kl_divergence(p, q) >= -1e-12
    assert metrics.disagreement_rate(p, q) == metrics.disagreement_rate(q, p)
    assert metrics.disagreement_rate(p, p) == 0.0


@property_settings
@given(probs_and_labels())
def test_reliability_bins_account_for_every_image(case: tuple[np.ndarray, np.ndarray]) -> None:
    probs, labels = case
    bins = metrics.reliability_bins(probs, labels)
    filled = bins.counts > 0

    assert bins.counts.sum() == len(labels)
    mean_confidence = np.sum(bins.counts[filled] * bins.mean_confidence[filled]) / len(labels)
    assert mean_confidence == pytest.approx(probs.max(axis=1).mean())
