"""Ensemble variants by name: a weighting rule, optionally followed by a fitted temperature.

A variant is one way to turn the members' softmax outputs into an ensemble:

* ``seed`` (training-accuracy weights, the seed's rule), ``uniform``,
  ``val-accuracy``, ``fitted`` (weights minimising validation NLL) and
  ``majority`` (a hard vote): the rules of ``harness.scoring.ensemble``;
* ``seed+T``, ``uniform+T``, ``fitted+T``: the same soft vote, then one
  temperature fitted to minimise the ensemble's validation NLL
  (``harness.scoring.calibration``). ``<rule>+temperature`` is accepted as another
  spelling of ``<rule>+T``.

Every fitted number (weights, temperatures) comes from the validation split;
test predictions only ever have fitted values applied to them. A run without a
validation split (seed-faithful) has only ``seed``, ``uniform`` and
``majority``.

``recommend`` picks the variant to use by cross-validated NLL on the
validation split, so the choice never looks at the test set either.

Pure numpy, no I/O.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from harness.scoring import calibration, ensemble, metrics
from harness.scoring.ensemble import MemberOutputs

SCALED = "+T"
SCALED_SPELLINGS = ("+T", "+t", "+temperature")
SCALED_RULES = ("seed", "uniform", "fitted")
"""Soft-vote rules that also get a temperature-scaled variant."""
NAMES: tuple[str, ...] = ensemble.METHODS + tuple(rule + SCALED for rule in SCALED_RULES)
"""Every variant name, in the order the report lists them."""
NEEDS_VALIDATION = frozenset({"val-accuracy", "fitted"} | {rule + SCALED for rule in SCALED_RULES})

DESCRIPTIONS = {
    "seed": "weights = final training accuracy (the seed's rule)",
    "uniform": "equal weights",
    "val-accuracy": "weights = validation accuracy",
    "fitted": "weights fitted to minimise validation NLL",
    "majority": "hard majority vote (ties: more summed probability)",
    "seed+T": "seed weights, then one temperature fitted on validation",
    "uniform+T": "equal weights, then one temperature fitted on validation",
    "fitted+T": "fitted weights, then one temperature fitted on validation",
}

SIMPLICITY = ("seed", "uniform", "val-accuracy", "seed+T", "uniform+T", "fitted", "fitted+T")
"""Soft variants from fewest fitted numbers to most: ties in ``recommend`` go to the earlier one."""
CV_FOLDS = 5
MIN_VALIDATION_FOR_CHOICE = 20
"""Below this many validation images, ``recommend`` keeps the seed's rule."""

NO_VALIDATION = ("needs a validation split; this run holds none (seed-faithful: the profile "
                 "trains on every training image)")


def canonical(name: str) -> str:
    """The standard spelling of a variant name, or ValueError listing the valid names."""
    text = str(name).strip()
    for spelling in SCALED_SPELLINGS:
        if text.endswith(spelling) and text != spelling:
            text = text[: -len(spelling)] + SCALED
            break
    if text not in NAMES:
        raise ValueError(f"unknown ensemble variant {name!r}; choose from {', '.join(NAMES)}")
    return text


def base_rule(name: str) -> str:
    """The weighting rule under a variant: ``fitted+T`` -> ``fitted``."""
    name = canonical(name)
    return name.removesuffix(SCALED)


def is_scaled(name: str) -> bool:
    return canonical(name).endswith(SCALED)


@dataclass(frozen=True)
class Variant:
    """One ensemble variant's predictions and the numbers that made it."""

    name: str
    weights: dict[str, float]
    """Normalised weight per member (equal for ``majority``: one vote each)."""
    temperature: float | None
    """The fitted ensemble temperature (``+T`` variants), else None."""
    test_probs: np.ndarray
    val_probs: np.ndarray | None
    """The same variant on the validation split (None without one)."""
    unscaled_test_probs: np.ndarray
    """Test predictions before the temperature (equal to ``test_probs`` without one)."""


def has_validation(members: Mapping[str, MemberOutputs]) -> bool:
    return bool(members) and all(
        m.val_probs is not None and m.val_labels is not None and len(m.val_labels) > 0
        for m in members.values())


def build(members: Mapping[str, MemberOutputs]) -> tuple[dict[str, Variant], dict[str, str]]:
    """Every variant the members allow, and why each other one is unavailable.

    Returns ``(variants, unavailable)``: ``variants`` in ``NAMES`` order;
    ``unavailable`` maps a name to a one-sentence reason.
    """
    if not members:
        raise ValueError("an ensemble needs at least one member")
    with_val = has_validation(members)
    val_labels = next(iter(members.values())).val_labels if with_val else None
    val_stack = [m.val_probs for m in members.values()] if with_val else None
    variants: dict[str, Variant] = {}
    unavailable: dict[str, str] = {}
    for name in NAMES:
        if name in NEEDS_VALIDATION and not with_val:
            unavailable[name] = NO_VALIDATION
            continue
        rule = base_rule(name)
        if rule in variants:
            base = variants[rule]
        elif rule in unavailable:
            unavailable[name] = unavailable[rule]
            continue
        else:
            try:
                base = _unscaled(rule, members, val_stack)
            except ValueError as err:
                unavailable[name] = str(err)
                continue
        if not is_scaled(name):
            variants[name] = base
            continue
        temperature = calibration.fit_temperature(base.val_probs, val_labels)
        variants[name] = Variant(
            name, base.weights, temperature,
            calibration.apply_temperature(base.test_probs, temperature),
            calibration.apply_temperature(base.val_probs, temperature),
            base.test_probs)
    return variants, unavailable


def _unscaled(rule: str, members: Mapping[str, MemberOutputs],
              val_stack: list[np.ndarray] | None) -> Variant:
    combined = ensemble.combine(rule, members)
    val_probs = None
    if val_stack is not None:
        if rule == "majority":
            val_probs = ensemble.majority_vote(val_stack)
        else:
            val_probs = ensemble.weighted_soft_vote(val_stack, list(combined.weights.values()))
    return Variant(rule, combined.weights, None, combined.probs, val_probs, combined.probs)


# -- choosing a variant without looking at the test set --------------------------------
def cross_validated_nll(names: list[str], members: Mapping[str, MemberOutputs],
                        folds: int = CV_FOLDS) -> dict[str, np.ndarray]:
    """Per-image validation NLL of soft variants, each image scored by a fit that did not see it.

    The validation images are dealt into ``folds`` interleaved folds; for each,
    a variant's validation-fitted parts (accuracy weights, fitted weights,
    temperature) are fitted on the other folds and applied to it. Rules with
    nothing fitted (``seed``, ``uniform``) score their plain NLL.
    Returns ``{name: [n_val] NLL per image}``.
    """
    names = [canonical(name) for name in names]
    if "majority" in names:
        raise ValueError("the majority vote has no probabilities to score by NLL")
    if not has_validation(members):
        raise ValueError(NO_VALIDATION)
    labels = np.asarray(next(iter(members.values())).val_labels)
    stack = np.stack([np.asarray(m.val_probs, dtype=np.float64) for m in members.values()])
    n = labels.shape[0]
    folds = max(2, min(folds, n))
    fold_of = np.arange(n) % folds
    scores = {name: np.empty(n) for name in names}
    for fold in range(folds):
        held, kept = fold_of == fold, fold_of != fold
        fit_members = {key: MemberOutputs(m.val_probs[kept], m.train_accuracy, m.val_probs[kept],
                                          labels[kept]) for key, m in members.items()}
        weights = {rule: np.array(list(ensemble.combine(rule, fit_members).weights.values()))
                   for rule in dict.fromkeys(base_rule(name) for name in names)}
        for name in names:
            w = weights[base_rule(name)]
            probs = ensemble.weighted_soft_vote(stack[:, held], w)
            if is_scaled(name):
                fit_probs = ensemble.weighted_soft_vote(stack[:, kept], w)
                probs = calibration.apply_temperature(
                    probs, calibration.fit_temperature(fit_probs, labels[kept]))
            true = probs[np.arange(probs.shape[0]), labels[held]]
            scores[name][held] = -np.log(np.clip(true, metrics.DEFAULT_EPS, 1.0))
    return scores


def recommend(variants: Mapping[str, Variant], members: Mapping[str, MemberOutputs]) -> dict:
    """The variant to use, and why, chosen on validation data only.

    Each soft variant is scored by cross-validated validation NLL
    (``cross_validated_nll``). The lowest score wins, except that a simpler
    variant (see ``SIMPLICITY``) within one standard error of it (paired,
    per image) is preferred: a difference that small is noise. Without a
    validation split, or with too few images to tell, the seed's rule is kept.
    Returns JSON-ready data: ``variant``, ``why``, and the ``scores``.
    """
    candidates = [name for name in SIMPLICITY if name in variants]
    n_val = len(next(iter(members.values())).val_labels) if has_validation(members) else 0
    fallback = "seed" if "seed" in variants else next(iter(variants))
    if not has_validation(members):
        return {"variant": fallback, "scores": {},
                "why": ("This run is seed-faithful: it holds out no validation images, so no "
                        "variant can be fitted or chosen on held-out data; the seed's rule "
                        "(training-accuracy weights) stands.")}
    if n_val < MIN_VALIDATION_FOR_CHOICE:
        return {"variant": fallback, "scores": {},
                "why": (f"Only {n_val} validation images: too few to tell the variants apart, "
                        "so the seed's rule stands.")}
    per_image = cross_validated_nll(candidates, members)
    scores = {name: float(values.mean()) for name, values in per_image.items()}
    best = min(candidates, key=lambda name: scores[name])
    chosen = best
    for name in candidates:  # simplest first
        diff = per_image[name] - per_image[best]
        standard_error = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
        if scores[name] - scores[best] <= standard_error:
            chosen = name
            break
    why = (f"Lowest cross-validated NLL on the {n_val} validation images "
           f"({scores[chosen]:.4f} nats; each image scored by weights and temperatures fitted "
           "without it); the test set played no part in the choice.")
    if chosen != best:
        why = (f"Within one standard error of the lowest cross-validated validation NLL "
               f"({best}: {scores[best]:.4f} nats, {chosen}: {scores[chosen]:.4f}) and simpler, "
               "so preferred; the test set played no part in the choice.")
    return {"variant": chosen, "why": why, "scores": scores, "lowest": best, "n_val": n_val}
