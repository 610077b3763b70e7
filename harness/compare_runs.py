"""Two runs side by side: each figure of each, and the direction and size of its change.

Pure: takes two run summaries (``harness.history.entry`` of each run's
analysis, the same one-line summary the run history keeps) and returns rows
that the command line prints. Speeds change by a ratio (``+12.0%``, faster or
slower), accuracies and calibration by a difference in points. A run holds one
measurement of each figure and no spread, so no change is called significant
here; the wording says "higher" or "lower", never "better beyond noise".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.workload.layout import DEFAULT_MODEL

FIGURES: tuple[tuple[str, str, str, bool], ...] = (
    # key in a member's summary, label, kind (ratio | points | difference), higher is better
    ("test_accuracy", "test accuracy", "points", True),
    ("nll", "test NLL", "difference", False),
    ("ece", "test ECE", "points", False),
    ("train_images_per_s", "training img/s", "ratio", True),
    ("epoch_s", "mean epoch s", "ratio", False),
    ("inference_images_per_s", "inference img/s", "ratio", True),
    ("latency_p50_ms", "latency p50 ms", "ratio", False),
)
ENSEMBLE_FIGURES = FIGURES[:3]


@dataclass(frozen=True)
class Row:
    """One figure of one backend (or of the ensemble) in both runs."""

    subject: str
    figure: str
    before: float | None
    after: float | None
    change: str
    """``+3.1 points (better)``, ``-12.0% (slower)``, ``n/a (only in run B)``."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def describe_change(before: float | None, after: float | None, kind: str, higher_is_better: bool) -> str:
    """The direction and size of a change, in the unit that suits the figure."""
    if before is None and after is None:
        return "n/a"
    if before is None:
        return "n/a (only in the second run)"
    if after is None:
        return "n/a (only in the first run)"
    if after == before:
        return "unchanged"
    better = (after > before) == higher_is_better
    if kind == "ratio":
        if before == 0:
            return "n/a (zero in the first run)"
        # every ratio figure is a speed: better means faster
        return f"{(after / before - 1) * 100:+.1f}% ({'faster' if better else 'slower'})"
    if kind == "points":
        return f"{(after - before) * 100:+.2f} points ({'better' if better else 'worse'})"
    return f"{after - before:+.4f} ({'better' if better else 'worse'})"


def compare(first: dict[str, Any], second: dict[str, Any]) -> list[Row]:
    """Rows for every backend in either run, then the ensemble and the recommended variant."""
    rows: list[Row] = []
    members_a = first.get("members") or {}
    members_b = second.get("members") or {}
    for name in sorted(set(members_a) | set(members_b)):
        a, b = members_a.get(name) or {}, members_b.get(name) or {}
        for key, label, kind, higher in FIGURES:
            before, after = _number(a.get(key)), _number(b.get(key))
            if before is None and after is None:
                continue
            rows.append(Row(name, label, before, after, describe_change(before, after, kind, higher)))
    for subject, part_a, part_b in (
        (f"ensemble ({first.get('method') or '?'} / {second.get('method') or '?'})",
         first.get("ensemble") or {}, second.get("ensemble") or {}),
        ("recommended variant", first.get("recommended") or {}, second.get("recommended") or {}),
    ):
        for key, label, kind, higher in ENSEMBLE_FIGURES:
            short = key.removeprefix("test_")  # the ensemble's summary says accuracy, nll, ece
            before, after = _number(part_a.get(short)), _number(part_b.get(short))
            if before is None and after is None:
                continue
            rows.append(Row(subject, label, before, after, describe_change(before, after, kind, higher)))
    return rows


def differences_in_setup(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """What makes the two runs less comparable: another profile, model, data set or executor."""
    notes = []
    first = {"model": DEFAULT_MODEL, **first}  # a run from before models were pluggable built the seed's CNN
    second = {"model": DEFAULT_MODEL, **second}
    for key, what in (("profile", "profile"), ("model", "model"), ("fingerprint", "data (fingerprint)"),
                      ("executor", "executor")):
        if first.get(key) != second.get(key):
            notes.append(f"the runs differ in {what}: {first.get(key)!r} vs {second.get(key)!r}")
    return notes
