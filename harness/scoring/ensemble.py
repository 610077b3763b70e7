"""Combine the backends' predictions into one ensemble, by a rule chosen by name.

The seed weighted each backend's softmax by its final training accuracy:
``p_ens = sum_i w_i p_i / sum_i w_i``. This module keeps that rule as the
default ("seed") and adds alternatives to compare it with: equal weights,
validation-accuracy weights, weights fitted on validation NLL, and a hard
majority vote. ``combine`` picks one by name; ``rescue_analysis`` measures the
seed's observation that an ensemble can be right where its members are wrong.

Pure numpy, no I/O: usable from the report, a test or a notebook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.scoring.calibration import fit_weights
from harness.scoring.metrics import accuracy, as_labels, as_member_stack, as_probs

MAJORITY_TIE_NUDGE = 1e-6
"""Probability mass ``majority_vote`` moves onto the tie-break winner (see there)."""


def _normalised_weights(weights: Any, n_members: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_members,):
        raise ValueError(f"weights must have shape ({n_members},), one per member; got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights must be finite and non-negative; got {w.tolist()}")
    total = w.sum()
    if total <= 0:
        raise ValueError(f"weights must have a positive sum; got {w.tolist()}")
    return w / total


def weighted_soft_vote(member_probs: Any, weights: Any) -> np.ndarray:
    """The seed's rule ``sum_i w_i p_i / sum_i w_i`` over members ``[m, n, k]`` -> ``[n, k]``.

    Scaling every weight by the same factor gives the same ensemble.
    """
    stack = as_member_stack(member_probs)
    return np.tensordot(_normalised_weights(weights, stack.shape[0]), stack, axes=1)


def weighted_contributions(member_probs: Any, weights: Any) -> np.ndarray:
    """Each member's share of the ensemble, ``w_i p_i / sum_j w_j``, as ``[m, n, k]``.

    Normalised by the weight total, so the members' rows add up exactly to
    ``weighted_soft_vote``. (The seed's per-image table printed the raw
    ``w_i p_i``, whose rows add up to ``sum_j w_j`` times the ensemble.)
    """
    stack = as_member_stack(member_probs)
    w = _normalised_weights(weights, stack.shape[0])
    return w[:, None, None] * stack


def majority_vote(member_probs: Any) -> np.ndarray:
    """Hard vote as probabilities ``[n, k]``: the fraction of members whose argmax is each class.

    Tie rule: when classes share the most votes, the one with the larger
    summed member probability wins (an exact tie there goes to the lower class
    index). So that ``argmax`` of the result names that winner, rows with a
    tie move ``MAJORITY_TIE_NUDGE`` of their mass onto it; other rows are the
    plain vote fractions. Rows always sum to 1, so every metric applies.
    """
    stack = as_member_stack(member_probs)
    m, _, k = stack.shape
    votes = np.eye(k)[stack.argmax(axis=2)].sum(axis=0)
    top = votes.max(axis=1, keepdims=True)
    tied = (votes == top).sum(axis=1) > 1
    winner = np.where(votes == top, stack.sum(axis=0), -np.inf).argmax(axis=1)
    fractions = votes / m
    nudged = (1 - MAJORITY_TIE_NUDGE) * fractions + MAJORITY_TIE_NUDGE * np.eye(k)[winner]
    return np.where(tied[:, None], nudged, fractions)


@dataclass(frozen=True)
class MemberOutputs:
    """What one backend contributes to an ensemble; methods say which fields they need."""

    test_probs: np.ndarray
    """Predictions on the test split, ``[n_test, k]``: what the ensemble combines."""
    train_accuracy: float | None = None
    """Final training accuracy: the seed's weight (method "seed")."""
    val_probs: np.ndarray | None = None
    """Predictions on the held-out validation split (methods "val-accuracy", "fitted")."""
    val_labels: np.ndarray | None = None
    """Labels of the validation split, the same for every member."""


@dataclass(frozen=True)
class EnsembleOutput:
    """An ensemble's test predictions and how they were made."""

    method: str
    probs: np.ndarray
    """Ensemble predictions on the test split, ``[n_test, k]``."""
    weights: dict[str, float]
    """Weight per member, normalised to sum to 1 (equal for "majority": one vote each)."""
    members: tuple[str, ...]
    """Members that took part, in input order."""


def _need(members: Mapping[str, MemberOutputs], field: str, method: str) -> list[Any]:
    missing = [name for name, m in members.items() if getattr(m, field) is None]
    if missing:
        raise ValueError(
            f"method {method!r} needs {field} for every member; missing for {', '.join(missing)}"
        )
    return [getattr(m, field) for m in members.values()]


def _shared_val_labels(members: Mapping[str, MemberOutputs], method: str) -> np.ndarray:
    labels = [np.asarray(v) for v in _need(members, "val_labels", method)]
    for name, other in zip(members, labels, strict=True):
        if not np.array_equal(other, labels[0]):
            raise ValueError(
                f"val_labels of {name} differ from {next(iter(members))}'s; "
                "use one validation split"
            )
    return labels[0]


def _seed_weights(members: Mapping[str, MemberOutputs]) -> np.ndarray:
    return np.array(_need(members, "train_accuracy", "seed"), dtype=np.float64)


def _uniform_weights(members: Mapping[str, MemberOutputs]) -> np.ndarray:
    return np.ones(len(members))


def _val_accuracy_weights(members: Mapping[str, MemberOutputs]) -> np.ndarray:
    val_probs = _need(members, "val_probs", "val-accuracy")
    labels = _shared_val_labels(members, "val-accuracy")
    return np.array([accuracy(p, labels) for p in val_probs])


def _fitted_weights(members: Mapping[str, MemberOutputs]) -> np.ndarray:
    val_probs = _need(members, "val_probs", "fitted")
    return fit_weights(val_probs, _shared_val_labels(members, "fitted"))


_WEIGHT_RULES: dict[str, Callable[[Mapping[str, MemberOutputs]], np.ndarray]] = {
    "seed": _seed_weights,
    "uniform": _uniform_weights,
    "val-accuracy": _val_accuracy_weights,
    "fitted": _fitted_weights,
}

DEFAULT_METHOD = "seed"
METHODS: tuple[str, ...] = ("seed", "uniform", "val-accuracy", "majority", "fitted")
"""Valid names for ``combine``; "majority" is a hard vote, the others weighted soft votes."""


def combine(method: str, members: Mapping[str, MemberOutputs]) -> EnsembleOutput:
    """Build the ensemble of ``members`` by the named method (see ``METHODS``)."""
    if method not in METHODS:
        raise ValueError(f"unknown ensemble method {method!r}; choose from {', '.join(METHODS)}")
    if not members:
        raise ValueError("an ensemble needs at least one member")
    names = tuple(members)
    test_probs = [as_probs(m.test_probs, f"test_probs of {name}") for name, m in members.items()]
    for name, probs in zip(names, test_probs, strict=True):
        if probs.shape != test_probs[0].shape:
            raise ValueError(
                f"test_probs of {name} has shape {probs.shape} "
                f"but {names[0]}'s has {test_probs[0].shape}"
            )
    if method == "majority":
        probs = majority_vote(test_probs)
        weights = np.full(len(names), 1.0 / len(names))
    else:
        raw_weights = _WEIGHT_RULES[method](members)
        try:
            weights = _normalised_weights(raw_weights, len(names))
        except ValueError as err:
            raise ValueError(f"method {method!r} gave unusable weights: {err}") from err
        probs = weighted_soft_vote(test_probs, weights)
    return EnsembleOutput(method, probs, dict(zip(names, weights.tolist(), strict=True)), names)


def rescue_analysis(
    member_probs: Mapping[str, Any], ensemble_probs: Any, labels: Any, max_examples: int = 5
) -> dict[str, Any]:
    """Count images where the ensemble is right against its members, or wrong against them.

    The seed noticed images that every backend got wrong but the weighted
    average got right; this makes that measurable, with its converse. Returns
    plain ints and lists (JSON-ready), each count with up to ``max_examples``
    ascending image indices under the matching ``indices_...`` key:

    * ``n_ensemble_right_all_members_wrong``: the seed's observation;
    * ``n_ensemble_right_majority_wrong``: at most half the members right
      (includes the previous case);
    * ``n_ensemble_wrong_majority_right``: more than half the members right,
      yet the ensemble wrong;

    plus ``n_images`` and ``n_members``.
    """
    if max_examples < 0:
        raise ValueError(f"max_examples must be non-negative; got {max_examples}")
    ens = as_probs(ensemble_probs, "ensemble_probs")
    y = as_labels(labels, ens.shape[0], ens.shape[1])
    stack = as_member_stack(list(member_probs.values()))
    if stack.shape[1:] != ens.shape:
        raise ValueError(f"members have shape {stack.shape[1:]} but ensemble_probs has {ens.shape}")
    members_right = (stack.argmax(axis=2) == y).sum(axis=0)
    ensemble_right = ens.argmax(axis=1) == y
    majority_right = 2 * members_right > stack.shape[0]
    cases = {
        "ensemble_right_all_members_wrong": ensemble_right & (members_right == 0),
        "ensemble_right_majority_wrong": ensemble_right & ~majority_right,
        "ensemble_wrong_majority_right": ~ensemble_right & majority_right,
    }
    report: dict[str, Any] = {"n_images": int(y.shape[0]), "n_members": int(stack.shape[0])}
    for case, mask in cases.items():
        indices = np.flatnonzero(mask)
        report[f"n_{case}"] = int(indices.size)
        report[f"indices_{case}"] = indices[:max_examples].tolist()
    return report
