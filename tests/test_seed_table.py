"""The seed's per-image ensemble table, reproduced with ``weighted_soft_vote``.

The seed README (``shared/seed/keras_multibackend.md``, section "Results")
prints, for 10 CIFAR-10 test images, one row per backend and an "ensemble"
row, in percent. Working the numbers out showed what they are:

* A backend row is ``100 * w_i * p_i``, not ``100 * p_i``: each row sums to
  about ``100 * w_i`` (cntk 77.12, tensorflow 77.19, theano 78.455), where
  ``w_i`` is that backend's training accuracy from the seed's results table
  (cntk 0.771, tensorflow 0.772, theano 0.785). So the README's "CNTK is
  predicting 4 with 49.498%" is really ``w * p``; p itself is about 64%.
* The ensemble row is ``100 * sum_i w_i p_i / sum_i w_i``: the seed's rule,
  i.e. ``weighted_soft_vote`` with the training accuracies as weights. Reading
  the rows as plain ``p_i`` instead misses by tens of points.

We recover ``p_i`` by dividing each backend row by its published accuracy and
check ``weighted_soft_vote`` against every ensemble value to 0.05 percentage
points. All 100 values reproduce; the largest miss is about 0.012 pp. That
residual is rounding in the seed, not a different rule: its row sums show the
weights it actually used were unrounded (about 0.77122, 0.77192, 0.78455,
while the results table prints 3 decimals), and with weights taken from the
row sums every value reproduces to about 0.001 pp, the table's own 3-decimal
rounding. The recovered ``p_i`` rows therefore sum to 1 only within about
6e-4, inside ``metrics.ROW_SUM_TOLERANCE``.

The table is embedded below as a literal copied from the seed, so this test
needs nothing beside the repository.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from harness.scoring.ensemble import MemberOutputs, combine, rescue_analysis, weighted_soft_vote

BACKENDS = ("cntk", "tensorflow", "theano")
TRAIN_ACCURACY = {"cntk": 0.771, "tensorflow": 0.772, "theano": 0.785}
"""The seed's results table: training accuracy per backend, its ensemble weights."""

TOLERANCE_PP = 0.05


class SeedImage(NamedTuple):
    """One image of the seed's table: percentages per class 0-9."""

    number: int
    answer: int
    cntk: tuple[float, ...]
    tensorflow: tuple[float, ...]
    theano: tuple[float, ...]
    ensemble: tuple[float, ...]


# Copied verbatim from shared/seed/keras_multibackend.md ("A sample inferences of
# each backend, with ensemble prediction"); "answer:N" is the true label.
SEED_TABLE = (
    SeedImage(
        number=1,
        answer=3,
        cntk=(0.039, 0.053, 2.518, 11.623, 49.498, 6.068, 4.404, 2.736, 0.075, 0.108),
        tensorflow=(0.049, 0.002, 0.289, 55.225, 0.055, 20.520, 0.399, 0.143, 0.495, 0.015),
        theano=(0.002, 0.005, 0.028, 67.820, 0.068, 3.543, 6.598, 0.017, 0.027, 0.347),
        ensemble=(0.039, 0.026, 1.218, 57.855, 21.318, 12.945, 4.898, 1.244, 0.257, 0.202),
    ),
    SeedImage(
        number=2,
        answer=8,
        cntk=(19.015, 6.447, 0.027, 0.125, 0.007, 0.001, 0.001, 0.004, 51.443, 0.052),
        tensorflow=(0.000, 0.019, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 77.173, 0.000),
        theano=(0.045, 2.147, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 76.233, 0.030),
        ensemble=(8.188, 3.700, 0.012, 0.053, 0.003, 0.000, 0.000, 0.002, 88.006, 0.035),
    ),
    SeedImage(
        number=3,
        answer=8,
        cntk=(41.421, 2.234, 0.902, 0.223, 1.573, 0.006, 0.062, 0.070, 21.528, 9.104),
        tensorflow=(1.056, 3.040, 0.000, 0.028, 0.000, 0.000, 0.002, 0.000, 72.917, 0.147),
        theano=(0.356, 52.288, 0.012, 0.305, 0.005, 0.000, 0.001, 0.001, 23.977, 1.508),
        ensemble=(18.402, 24.729, 0.393, 0.239, 0.678, 0.003, 0.028, 0.031, 50.876, 4.622),
    ),
    SeedImage(
        number=4,
        answer=0,
        cntk=(44.158, 6.019, 1.613, 4.033, 1.339, 0.091, 0.133, 0.150, 11.250, 8.334),
        tensorflow=(68.420, 0.740, 0.175, 0.296, 0.010, 0.004, 0.029, 0.006, 6.932, 0.580),
        theano=(37.302, 2.057, 0.594, 2.029, 0.348, 0.086, 0.043, 0.029, 33.511, 2.455),
        ensemble=(64.391, 3.788, 1.023, 2.731, 0.729, 0.078, 0.088, 0.079, 22.208, 4.884),
    ),
    SeedImage(
        number=5,
        answer=6,
        cntk=(0.005, 0.001, 27.413, 1.284, 8.657, 0.023, 39.720, 0.001, 0.017, 0.001),
        tensorflow=(0.000, 0.000, 0.020, 0.884, 71.491, 0.001, 4.796, 0.000, 0.000, 0.000),
        theano=(0.000, 0.000, 2.550, 0.190, 1.722, 0.000, 73.993, 0.000, 0.000, 0.000),
        ensemble=(0.002, 0.000, 12.881, 1.013, 35.172, 0.011, 50.913, 0.000, 0.007, 0.000),
    ),
    SeedImage(
        number=6,
        answer=6,
        cntk=(0.001, 0.000, 3.774, 23.424, 8.258, 0.708, 40.913, 0.036, 0.001, 0.005),
        tensorflow=(0.002, 0.000, 0.401, 41.210, 1.115, 4.864, 29.589, 0.006, 0.004, 0.001),
        theano=(0.000, 0.000, 0.009, 0.263, 0.005, 0.072, 78.107, 0.000, 0.000, 0.000),
        ensemble=(0.001, 0.000, 1.797, 27.881, 4.029, 2.425, 63.844, 0.018, 0.002, 0.003),
    ),
    SeedImage(
        number=7,
        answer=1,
        cntk=(3.350, 0.113, 14.258, 12.193, 0.190, 4.802, 0.295, 41.802, 0.021, 0.097),
        tensorflow=(0.048, 41.460, 0.462, 9.073, 0.000, 0.737, 0.079, 0.602, 0.044, 24.686),
        theano=(0.008, 49.193, 0.053, 2.381, 0.001, 0.065, 0.183, 0.015, 0.024, 26.531),
        ensemble=(1.463, 38.994, 6.347, 10.159, 0.082, 2.408, 0.240, 18.224, 0.038, 22.045),
    ),
    SeedImage(
        number=8,
        answer=6,
        cntk=(0.014, 0.001, 14.742, 5.123, 42.021, 0.048, 15.141, 0.020, 0.008, 0.004),
        tensorflow=(0.108, 0.000, 9.300, 6.686, 31.076, 0.310, 29.625, 0.072, 0.008, 0.007),
        theano=(0.023, 0.000, 33.777, 0.185, 1.431, 0.096, 42.927, 0.013, 0.002, 0.000),
        ensemble=(0.062, 0.000, 24.840, 5.153, 32.018, 0.195, 37.674, 0.046, 0.007, 0.005),
    ),
    SeedImage(
        number=9,
        answer=3,
        cntk=(0.005, 0.000, 4.104, 43.597, 17.353, 5.953, 5.485, 0.624, 0.000, 0.001),
        tensorflow=(0.000, 0.000, 0.067, 70.856, 2.242, 3.932, 0.091, 0.004, 0.000, 0.000),
        theano=(0.000, 0.000, 0.001, 78.418, 0.011, 0.021, 0.002, 0.003, 0.000, 0.000),
        ensemble=(0.002, 0.000, 1.792, 82.860, 8.423, 4.256, 2.396, 0.271, 0.000, 0.000),
    ),
    SeedImage(
        number=10,
        answer=1,
        cntk=(8.810, 7.715, 8.225, 13.706, 6.575, 3.413, 8.631, 4.522, 5.751, 9.773),
        tensorflow=(0.482, 68.974, 0.012, 0.014, 0.001, 0.001, 0.213, 0.000, 4.088, 3.405),
        theano=(0.480, 48.363, 0.000, 0.000, 0.000, 0.000, 0.000, 0.000, 3.134, 26.477),
        ensemble=(4.199, 53.724, 3.539, 5.895, 2.825, 1.467, 3.799, 1.943, 5.574, 17.036),
    ),
)


def shown(backend: str) -> np.ndarray:
    """The seed's values for one row name, as fractions ``[10 images, 10 classes]``."""
    return np.array([getattr(image, backend) for image in SEED_TABLE]) / 100


def recovered_probs(weights: dict[str, float]) -> np.ndarray:
    """``p_i = shown_i / w_i`` per backend, ``[3, 10, 10]``."""
    return np.stack([shown(b) / weights[b] for b in BACKENDS])


def test_backend_rows_are_weight_times_probability() -> None:
    # Each printed row sums to 100 * w_i, so it is w_i * p_i (p_i sums to 1).
    for backend in BACKENDS:
        row_sums = shown(backend).sum(axis=1)
        np.testing.assert_allclose(row_sums, TRAIN_ACCURACY[backend], atol=6e-4)


def test_seed_rule_reproduces_every_ensemble_value() -> None:
    weights = [TRAIN_ACCURACY[b] for b in BACKENDS]
    ensemble = weighted_soft_vote(recovered_probs(TRAIN_ACCURACY), weights)

    miss_pp = np.abs(100 * ensemble - 100 * shown("ensemble"))
    worst_image, worst_class = np.unravel_index(miss_pp.argmax(), miss_pp.shape)
    assert miss_pp.max() <= TOLERANCE_PP, (
        f"image {worst_image + 1}, class {worst_class}: off by {miss_pp.max():.4f} pp"
    )


def test_residual_is_the_seeds_rounding_of_its_weights() -> None:
    # With the unrounded weights the seed used (read off its row sums), the only
    # error left is the table's printing to 3 decimals of a percent.
    unrounded = {b: float(shown(b).sum(axis=1).mean()) for b in BACKENDS}
    ensemble = weighted_soft_vote(recovered_probs(unrounded), list(unrounded.values()))
    np.testing.assert_allclose(100 * ensemble, 100 * shown("ensemble"), atol=0.002)


def test_reading_rows_as_plain_probabilities_does_not_reproduce() -> None:
    # The other reading, rows = p_i and ensemble = sum w_i p_i / sum w_i, is far
    # off (image 1, class 3 would be 45.0% instead of 57.855%). Computed by hand:
    # such rows sum to ~0.77, so they are not probabilities the harness accepts.
    weights = np.array([TRAIN_ACCURACY[b] for b in BACKENDS])
    rows = np.stack([shown(b) for b in BACKENDS])
    ensemble = np.tensordot(weights, rows, axes=1) / weights.sum()
    assert np.abs(100 * ensemble - 100 * shown("ensemble")).max() > 5


def test_default_combine_method_is_the_seed_rule() -> None:
    probs = recovered_probs(TRAIN_ACCURACY)
    members = {
        b: MemberOutputs(test_probs=probs[i], train_accuracy=TRAIN_ACCURACY[b])
        for i, b in enumerate(BACKENDS)
    }
    out = combine("seed", members)

    np.testing.assert_allclose(100 * out.probs, 100 * shown("ensemble"), atol=TOLERANCE_PP)
    assert out.weights == pytest.approx({b: TRAIN_ACCURACY[b] / 2.328 for b in BACKENDS})


def test_the_table_shows_minority_rescues_but_no_all_wrong_rescue() -> None:
    # The seed says the ensemble is sometimes right when all three are wrong.
    # Its sample has no such image; images 3 and 8 are the milder case: only
    # one backend is right and the ensemble sides with it.
    probs = recovered_probs(TRAIN_ACCURACY)
    labels = np.array([image.answer for image in SEED_TABLE])
    report = rescue_analysis(dict(zip(BACKENDS, probs, strict=True)), shown("ensemble"), labels)

    assert report["n_ensemble_right_all_members_wrong"] == 0
    assert report["indices_ensemble_right_majority_wrong"] == [2, 7]  # images 3 and 8
    assert report["n_ensemble_wrong_majority_right"] == 0
