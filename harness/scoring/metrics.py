"""Scores for class-probability predictions: how right, how sure, how alike.

Everything here is pure numpy on in-memory arrays, so a report, a test or a
notebook can score a backend or an ensemble the same way. Inputs follow one
convention: ``probs`` is a float array ``[n_images, n_classes]`` whose rows are
probability vectors, ``labels`` an integer array ``[n_images]``. The input
checks at the top (``as_probs``, ``as_labels``, ``as_member_stack``) are shared
with ``ensemble`` and ``calibration`` so every entry point rejects a wrong shape
with the same clear ``ValueError``.

The predicted class of a row is its ``argmax``; an exact tie goes to the lowest
class index (numpy's rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

DEFAULT_EPS = 1e-12
"""Probabilities are clipped to at least this before a log, so a confident
mistake costs ``-log(1e-12) ~= 27.6`` nats instead of infinity."""

ROW_SUM_TOLERANCE = 1e-3
"""How far a row may sum from 1 and still count as a probability vector: loose
enough for float16/float32 softmax output and for tables printed to 3 decimals,
tight enough to reject logits or unnormalised scores passed by mistake."""

DEFAULT_N_BINS = 15


def as_probs(probs: Any, name: str = "probs") -> np.ndarray:
    """Return ``probs`` as a float64 ``[n, k]`` array, or raise ValueError saying what is wrong."""
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [n_images, n_classes]; got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"{name} must hold at least one image and one class; got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(arr < 0):
        raise ValueError(f"{name} contains negative values; pass probabilities, not logits")
    worst = float(np.max(np.abs(arr.sum(axis=1) - 1.0)))
    if worst > ROW_SUM_TOLERANCE:
        raise ValueError(
            f"{name} rows must sum to 1 (within {ROW_SUM_TOLERANCE}); one is off by {worst:.3g}"
        )
    return arr


def as_labels(labels: Any, n_images: int, n_classes: int, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as an int64 ``[n_images]`` array of class indices, or raise ValueError."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array [n_images]; got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices; got dtype {arr.dtype}")
    if arr.shape[0] != n_images:
        raise ValueError(f"{name} has {arr.shape[0]} entries but the predictions have {n_images}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}); got {arr.min()}..{arr.max()}")
    return arr.astype(np.int64)


def as_member_stack(member_probs: Any, name: str = "member_probs") -> np.ndarray:
    """Return per-member predictions as a float64 ``[m, n, k]`` array, checking every member."""
    if isinstance(member_probs, Mapping):
        raise TypeError(f"{name} must be a sequence or array [m, n, k], not a mapping")
    if isinstance(member_probs, np.ndarray) and member_probs.ndim != 3:
        raise ValueError(f"{name} must be a 3-D array [m, n, k]; got shape {member_probs.shape}")
    members = [as_probs(p, f"{name}[{i}]") for i, p in enumerate(member_probs)]
    if not members:
        raise ValueError(f"{name} must hold at least one member")
    shapes = {p.shape for p in members}
    if len(shapes) != 1:
        raise ValueError(f"{name} members disagree on shape: {sorted(shapes)}")
    return np.stack(members)


def _probs_and_labels(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p = as_probs(probs)
    return p, as_labels(labels, p.shape[0], p.shape[1])


def accuracy(probs: Any, labels: Any) -> float:
    """Top-1 accuracy: the fraction of images whose most probable class is the label."""
    p, y = _probs_and_labels(probs, labels)
    return float(np.mean(p.argmax(axis=1) == y))


def nll(probs: Any, labels: Any, eps: float = DEFAULT_EPS) -> float:
    """Mean negative log-likelihood (cross-entropy) of the true class, in nats.

    Unlike accuracy it rewards being sure when right and punishes being sure
    when wrong, which is what temperature scaling and fitted weights optimise.
    """
    p, y = _probs_and_labels(probs, labels)
    true_class = p[np.arange(p.shape[0]), y]
    return float(-np.mean(np.log(np.clip(true_class, eps, 1.0))))


def brier_score(probs: Any, labels: Any) -> float:
    """Mean over images of the squared distance to the one-hot label (0 is perfect, 2 is worst)."""
    p, y = _probs_and_labels(probs, labels)
    # sum((p - onehot)^2) = sum(p^2) - 2 p_y + 1, without a classes x classes identity (10,000 classes: 800 MB)
    return float(np.mean(np.sum(p * p, axis=1) - 2.0 * p[np.arange(len(y)), y] + 1.0))


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin data for a reliability diagram; empty bins hold NaN confidence and accuracy.

    Bin ``b`` covers confidences in ``(edges[b], edges[b + 1]]`` (the first bin
    also takes 0), where confidence is the probability of the predicted class.
    """

    edges: np.ndarray
    counts: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray

    def to_dict(self) -> dict[str, list[float | None] | list[int]]:
        """JSON-friendly lists; empty bins become ``None``."""

        def plain(values: np.ndarray) -> list[float | None]:
            return [None if np.isnan(v) else float(v) for v in values]

        return {
            "edges": [float(e) for e in self.edges],
            "counts": [int(c) for c in self.counts],
            "mean_confidence": plain(self.mean_confidence),
            "accuracy": plain(self.accuracy),
        }


def reliability_bins(probs: Any, labels: Any, n_bins: int = DEFAULT_N_BINS) -> ReliabilityBins:
    """Sort images into equal-width confidence bins; report each bin's confidence and accuracy."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1; got {n_bins}")
    p, y = _probs_and_labels(probs, labels)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.digitize(confidence, edges[1:-1], right=True)
    counts = np.bincount(which, minlength=n_bins)
    filled = counts > 0

    def bin_mean(values: np.ndarray) -> np.ndarray:
        sums = np.bincount(which, weights=values, minlength=n_bins)
        return np.divide(sums, counts, out=np.full(n_bins, np.nan), where=filled)

    return ReliabilityBins(edges, counts, bin_mean(confidence), bin_mean(correct))


def expected_calibration_error(probs: Any, labels: Any, n_bins: int = DEFAULT_N_BINS) -> float:
    """ECE: the image-weighted mean over confidence bins of |bin accuracy - bin confidence|.

    0 means "when the model says 80% it is right 80% of the time" holds in
    every bin; it uses the same equal-width bins as ``reliability_bins``.
    """
    bins = reliability_bins(probs, labels, n_bins)
    filled = bins.counts > 0
    gaps = np.abs(bins.accuracy[filled] - bins.mean_confidence[filled])
    return float(np.sum(bins.counts[filled] * gaps) / np.sum(bins.counts))


def per_class_accuracy(probs: Any, labels: Any, n_classes: int | None = None) -> np.ndarray:
    """Accuracy (recall) per true class, ``[n_classes]``; NaN for a class with no images."""
    p, y = _probs_and_labels(probs, labels)
    k = _checked_n_classes(n_classes, p.shape[1])
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    counts = np.bincount(y, minlength=k)
    hits = np.bincount(y, weights=correct, minlength=k)
    return np.divide(hits, counts, out=np.full(k, np.nan), where=counts > 0)


def confusion_matrix(pred_or_probs: Any, labels: Any, n_classes: int | None = None) -> np.ndarray:
    """Integer counts ``[n_classes, n_classes]`` indexed ``[true, predicted]``.

    Takes either probabilities ``[n, k]`` (the argmax is the prediction) or
    predicted class indices ``[n]``; ``n_classes`` is required for the latter.
    """
    arr = np.asarray(pred_or_probs)
    if arr.ndim == 2:
        p = as_probs(arr, "pred_or_probs")
        k = _checked_n_classes(n_classes, p.shape[1])
        pred = p.argmax(axis=1)
    elif arr.ndim == 1:
        if n_classes is None:
            raise ValueError("n_classes is required when passing predicted class indices")
        k = _checked_n_classes(n_classes, n_classes)
        pred = as_labels(arr, arr.shape[0], k, "predictions")
    else:
        raise ValueError(
            f"pred_or_probs must be [n, k] probabilities or [n] classes; got {arr.shape}"
        )
    y = as_labels(labels, pred.shape[0], k)
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def _checked_n_classes(n_classes: int | None, from_data: int) -> int:
    if n_classes is None:
        return from_data
    if n_classes < 1 or n_classes != from_data:
        raise ValueError(
            f"n_classes={n_classes} does not match the predictions' {from_data} classes"
        )
    return n_classes


def disagreement_rate(probs_a: Any, probs_b: Any) -> float:
    """Fraction of images on which two models predict different classes."""
    a, b = _same_shape(probs_a, probs_b)
    return float(np.mean(a.argmax(axis=1) != b.argmax(axis=1)))


def mean_kl_divergence(p: Any, q: Any, eps: float = DEFAULT_EPS) -> float:
    """Mean over images of KL(p || q) in nats: how surprised ``q`` is by ``p``'s beliefs.

    Classes where p is 0 contribute 0; q is clipped to ``eps`` so a class that
    q rules out costs a large but finite amount.
    """
    a, b = _same_shape(p, q, "p", "q")
    log_ratio = np.log(np.clip(a, eps, 1.0)) - np.log(np.clip(b, eps, 1.0))
    return float(np.mean(np.sum(a * log_ratio, axis=1)))


def _same_shape(
    a: Any, b: Any, name_a: str = "probs_a", name_b: str = "probs_b"
) -> tuple[np.ndarray, np.ndarray]:
    pa, pb = as_probs(a, name_a), as_probs(b, name_b)
    if pa.shape != pb.shape:
        raise ValueError(f"{name_a} has shape {pa.shape} but {name_b} has {pb.shape}")
    return pa, pb


def pairwise(
    members: Mapping[str, Any], eps: float = DEFAULT_EPS
) -> dict[tuple[str, str], dict[str, float]]:
    """How much each pair of members differs, for every unordered pair once.

    Keys are ``(a, b)`` with ``a`` before ``b`` in ``members``' order. Values
    hold ``disagreement`` (argmax differs) and KL in both directions, since KL
    is not symmetric: ``kl_ab`` = mean KL(a || b), ``kl_ba`` = mean KL(b || a).
    """
    return {
        (a, b): {
            "disagreement": disagreement_rate(members[a], members[b]),
            "kl_ab": mean_kl_divergence(members[a], members[b], eps),
            "kl_ba": mean_kl_divergence(members[b], members[a], eps),
        }
        for a, b in combinations(members, 2)
    }


def summary(probs: Any, labels: Any, n_bins: int = DEFAULT_N_BINS) -> dict[str, float]:
    """The numbers one report row shows, as plain JSON-serialisable floats."""
    return {
        "accuracy": accuracy(probs, labels),
        "nll": nll(probs, labels),
        "ece": expected_calibration_error(probs, labels, n_bins),
        "brier": brier_score(probs, labels),
    }
