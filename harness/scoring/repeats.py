"""Repeated runs (``--repeats N``): each backend's accuracy and speed as a mean with a 95% interval.

Pure: takes one ``RunAnalysis`` per repeat of the same model, data and profile
(repeat i trained with ``train_seed = seed + i - 1``: the same images, other
initial weights and shuffles) and returns the plain JSON that the repeats
report shows and ``repeats.json`` stores.

Each figure is the mean over the repeats with a Student's t 95% interval of
that mean (``intervals.mean_ci``). That interval holds what changes from one
training to the next; the per-run intervals (Wilson over the test images, the
bootstrap over steps) hold one training fixed and so cannot say whether a
backend is more accurate in general. A backend is called the most accurate or
the fastest only where its interval is clear of the runner-up's; otherwise the
sentence says which are tied (``intervals.ranking``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.scoring import intervals
from harness.scoring.record import RunAnalysis

ENSEMBLE = "ensemble"
"""The row of the run's checked ensemble variant, beside the backends."""


def _mean_figure(values: list[float]) -> dict[str, Any]:
    mean, low, high = intervals.mean_ci(values)
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": len(values), "values": list(values)}


def _accuracy(analysis: RunAnalysis, name: str) -> float | None:
    member = analysis.members.get(name)
    if member is None or member.state != "ok" or member.test is None:
        return None
    return member.test.accuracy


def _train_rate(analysis: RunAnalysis, name: str) -> float | None:
    row = (analysis.speed or {}).get("backends", {}).get(name) if isinstance(analysis.speed, dict) else None
    try:
        return float(row["train"]["images_per_s"]["median"])
    except (TypeError, KeyError, ValueError):
        return None


def _training_seed(analysis: RunAnalysis) -> int | None:
    profile = (analysis.settings or {}).get("profile") or {}
    seed = profile.get("train_seed")
    return seed if seed is not None else profile.get("seed")


def summarise_repeats(analyses: Sequence[RunAnalysis]) -> dict[str, Any]:
    """Every backend's (and the ensemble's) test accuracy and training speed over the repeats.

    A repeat where a backend did not finish (or has no speed phase) adds no value
    for it; ``missing`` says which repeats, so a mean over fewer runs is never
    silent. Rankings use only figures with an interval (two repeats or more).
    """
    names: list[str] = []
    for analysis in analyses:
        names.extend(name for name in analysis.members if name not in names)
    runs = [{"run_id": a.run_id, "train_seed": _training_seed(a)} for a in analyses]
    accuracy: dict[str, Any] = {}
    speed: dict[str, Any] = {}
    missing: dict[str, list[str]] = {}
    for name in names:
        values = [(a.run_id, _accuracy(a, name), _train_rate(a, name)) for a in analyses]
        accs = [acc for _, acc, _ in values if acc is not None]
        rates = [rate for _, _, rate in values if rate is not None]
        absent = [run_id for run_id, acc, _ in values if acc is None]
        if absent:
            missing[name] = absent
        if accs:
            accuracy[name] = _mean_figure(accs)
        if rates:
            speed[name] = _mean_figure(rates)
    ensemble = [a.ensemble.test.accuracy for a in analyses if a.ensemble is not None and a.ensemble.test]
    if ensemble:
        accuracy[ENSEMBLE] = _mean_figure(ensemble)
    backends_only = {n: f for n, f in accuracy.items() if n != ENSEMBLE}
    return {
        "repeats": len(analyses),
        "runs": runs,
        "method": analyses[0].method if analyses else None,
        "accuracy": accuracy,
        "speed": speed,
        "missing": missing,
        "ranking": {
            "accuracy": intervals.ranking(_figures(backends_only), True, "most accurate",
                                          fmt=lambda v: f"{v * 100:.1f}%"),
            "speed": intervals.ranking(_figures(speed), True, "fastest", fmt="{:,.0f}".format, unit="img/s"),
        },
        "ensemble_vs_best": _ensemble_vs_best(accuracy),
    }


def _figures(rows: dict[str, Any]) -> dict[str, intervals.Figure]:
    return {name: (row["mean"], row["ci_low"], row["ci_high"]) for name, row in rows.items()}


def _ensemble_vs_best(accuracy: dict[str, Any]) -> str | None:
    """Whether the ensemble's interval is clear of the best backend's, in one sentence."""
    ensemble = accuracy.get(ENSEMBLE)
    members = {n: r for n, r in accuracy.items() if n != ENSEMBLE}
    if ensemble is None or not members:
        return None
    best = max(members, key=lambda n: members[n]["mean"])
    gap = (ensemble["mean"] - members[best]["mean"]) * 100
    apart = intervals.separated((ensemble["ci_low"], ensemble["ci_high"]),
                                (members[best]["ci_low"], members[best]["ci_high"]))
    if apart:
        side = "above" if gap > 0 else "below"
        return (f"the ensemble's mean accuracy is {abs(gap):.1f} points {side} the best backend's ({best}), "
                "and their 95% intervals do not overlap")
    return (f"the ensemble and the best backend ({best}) are tied: {gap:+.1f} points apart in mean accuracy, "
            "with overlapping 95% intervals")
