"""Two runs side by side, speaking like the report: a change is called only where the intervals separate.

Pure: takes the two runs' analyses (``ensemble.json``) and returns rows the
command line prints. Each figure comes with each run's 95% interval:

* speed from the speed phase (each backend timed alone): images/s with the
  bootstrap interval of the median; "faster" or "slower" only when the two
  intervals do not overlap, else "within noise"; a side timed on a shared
  machine (``contended``) is marked and never called faster or slower;
* serving, likewise, from the serve phase: SingleStream's p90 latency with its
  distribution-free interval (lower is faster), Offline's images/s at its best
  batch size with its interval, and the Server's peak rate with the bracket
  its search left (the highest rate that met the bound and the lowest that
  did not: peaks whose brackets do not overlap differ); a side whose served
  answers failed the audit is never called faster or slower;
* accuracy with its Wilson interval over the test images; "better" or
  "worse" only when the intervals separate;
* NLL and ECE without an interval: their difference, called higher or lower,
  never better or worse;
* the training and predict jobs' own images/s, measured while other jobs of
  the run shared the machine, only as context: labelled "in job, shared" and
  never called faster or slower.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from harness.scoring import intervals
from harness.scoring import speed as speed_scoring
from harness.scoring.record import RunAnalysis
from harness.workload.layout import DEFAULT_MODEL

Interval = tuple[float, float] | None


@dataclass(frozen=True)
class Side:
    """One run's value of a figure, with its interval and whether it was timed on a shared machine."""

    value: float | None
    interval: Interval = None
    contended: bool = False
    audit_failed: bool = False
    """Serving only: its served answers differed from its predict job's, so its speed is not a figure."""
    missing: str = ""
    """Why there is no value though the run has the phase (``no offered rate met the bound``)."""


@dataclass(frozen=True)
class Row:
    """One figure of one backend (or of the ensemble) in both runs."""

    subject: str
    figure: str
    before: Side
    after: Side
    change: str
    """``+12.0% (faster)``, ``-1.20 points (within noise)``, ``n/a (only in the second run)``..."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def describe_change(before: Side, after: Side, kind: str, higher_is_better: bool | None) -> str:
    """The size of a change, and its direction only where both intervals exist and separate.

    ``kind``: ``speed`` (a ratio; faster/slower; ``latency`` with ``higher_is_better`` False), ``accuracy``
    (points; better/worse), ``points`` or ``difference`` (no interval: higher/lower), ``shared`` (a ratio of
    in-job figures: never judged).
    """
    if before.value is None and after.value is None:
        return "n/a"
    for name, side in (("A", before), ("B", after)):
        if side.value is None and side.missing:
            return f"n/a ({name}: {side.missing})"
    if before.value is None:
        return "n/a (only in the second run)"
    if after.value is None:
        return "n/a (only in the first run)"
    if kind in ("speed", "latency", "shared"):
        if before.value == 0:
            return "n/a (zero in the first run)"
        size = f"{(after.value / before.value - 1) * 100:+.1f}%"
    elif kind in ("accuracy", "points"):
        size = f"{(after.value - before.value) * 100:+.2f} points"
    else:
        size = f"{after.value - before.value:+.4f}"
    if after.value == before.value:
        return "unchanged"
    if kind == "shared":
        return f"{size} (measured in the jobs, beside other jobs: not a speed comparison)"
    if before.contended or after.contended:
        sides = " and ".join(name for name, side in (("A", before), ("B", after)) if side.contended)
        return f"{size} (not compared: {sides} timed while other processes used the machine)"
    if before.audit_failed or after.audit_failed:
        sides = " and ".join(name for name, side in (("A", before), ("B", after)) if side.audit_failed)
        return f"{size} (not compared: {sides} served answers that differ from its predict job's)"
    if kind in ("points", "difference") or higher_is_better is None:
        return f"{size} ({'higher' if after.value > before.value else 'lower'}; no interval to judge it by)"
    if before.interval is None or after.interval is None:
        return f"{size} (no interval on one side: not judged)"
    if not intervals.separated(before.interval, after.interval):
        return f"{size} (within noise: the 95% intervals overlap)"
    better = (after.value > before.value) == higher_is_better
    words = ("faster", "slower") if kind in ("speed", "latency") else ("better", "worse")
    return f"{size} ({words[0] if better else words[1]})"


def _speed(analysis: RunAnalysis, backend: str, part: str) -> Side:
    row = ((analysis.speed or {}).get("backends") or {}).get(backend) or {}
    figures = (row.get(part) or {}).get("images_per_s") or {}
    low, high = _number(figures.get("ci_low")), _number(figures.get("ci_high"))
    return Side(_number(figures.get("median")), (low, high) if low is not None and high is not None else None,
                bool(speed_scoring.contention(row, part)))


def _interval(low: Any, high: Any) -> Interval:
    low, high = _number(low), _number(high)
    return (low, high) if low is not None and high is not None else None


def _serving(analysis: RunAnalysis, backend: str) -> dict[str, Side]:
    """The serve phase's three headline figures of one backend, each with its interval (see the module)."""
    row = ((analysis.serving or {}).get("backends") or {}).get(backend)
    if not row:
        return {}
    load = row.get("load") or {}
    wrong = (row.get("audit") or {}).get("passed") is False

    def side(value: Any, interval: Interval, scenario: str) -> Side:
        return Side(_number(value), interval, bool((load.get(scenario) or {}).get("contended")), wrong)
    p90 = (row.get("single_stream") or {}).get("p90_ms") or {}
    best = (row.get("offline") or {}).get("best") or {}
    server = row.get("server") or {}
    return {
        "serve:single_stream": side(p90.get("value"), _interval(p90.get("ci_low"), p90.get("ci_high")),
                                    "single_stream"),
        "serve:offline": side(best.get("images_per_s"), _interval(best.get("ci_low"), best.get("ci_high")),
                              "offline"),
        "serve:server": replace(side(server.get("peak_rate"), _interval(server.get("peak_rate"),
                                                                         server.get("failed_rate")), "server"),
                                missing="" if server.get("peak_rate") is not None else "no offered rate met the bound"),
    }


def _accuracy(value: Any, n: int | None) -> Side:
    value = _number(value)
    if value is None or not n:
        return Side(value)
    return Side(value, intervals.wilson(round(value * n), n))


def _member_sides(analysis: RunAnalysis, backend: str) -> dict[str, Side]:
    member = analysis.members.get(backend)
    if member is None:
        return {}
    test = member.test
    n = analysis.n_test or None
    return {
        "speed:train": _speed(analysis, backend, "train"),
        "speed:predict": _speed(analysis, backend, "predict"),
        **_serving(analysis, backend),
        "accuracy": _accuracy(test.accuracy if test else None, n),
        "nll": Side(_number(test.nll) if test else None),
        "ece": Side(_number(test.ece) if test else None),
        "shared:train": Side(_number(member.train_images_per_s)),
        "shared:predict": Side(_number(member.inference_images_per_s)),
    }


MEMBER_FIGURES: tuple[tuple[str, str, str, bool | None], ...] = (
    # key, label, kind, higher is better
    ("speed:train", "training img/s, alone", "speed", True),
    ("speed:predict", "inference img/s, alone", "speed", True),
    ("serve:single_stream", "SingleStream p90 ms, alone", "latency", False),
    ("serve:offline", "Offline img/s at its best batch, alone", "speed", True),
    ("serve:server", "Server peak queries/s (bracket), alone", "speed", True),
    ("accuracy", "test accuracy", "accuracy", True),
    ("nll", "test NLL", "difference", None),
    ("ece", "test ECE", "points", None),
    ("shared:train", "training img/s in job, shared", "shared", None),
    ("shared:predict", "inference img/s in job, shared", "shared", None),
)


def compare(first: RunAnalysis, second: RunAnalysis) -> list[Row]:
    """Rows for every backend in either run, then the ensemble and the recommended variant."""
    rows: list[Row] = []
    for name in sorted(set(first.members) | set(second.members)):
        a, b = _member_sides(first, name), _member_sides(second, name)
        for key, label, kind, higher in MEMBER_FIGURES:
            before, after = a.get(key, Side(None)), b.get(key, Side(None))
            if before.value is None and after.value is None and not (before.missing or after.missing):
                continue
            rows.append(Row(name, label, before, after, describe_change(before, after, kind, higher)))
    ensembles = (
        (f"ensemble ({first.method or '?'} / {second.method or '?'})", first.ensemble, second.ensemble),
        ("recommended variant", first.variants.get((first.recommendation or {}).get("variant")),
         second.variants.get((second.recommendation or {}).get("variant"))),
    )
    for subject, part_a, part_b in ensembles:
        test_a, test_b = (part.test if part is not None else None for part in (part_a, part_b))
        for label, kind, get in (("test accuracy", "accuracy", lambda t: t.accuracy),
                                 ("test NLL", "difference", lambda t: t.nll),
                                 ("test ECE", "points", lambda t: t.ece)):
            if kind == "accuracy":
                before = _accuracy(get(test_a) if test_a else None, first.n_test)
                after = _accuracy(get(test_b) if test_b else None, second.n_test)
            else:
                before = Side(_number(get(test_a)) if test_a else None)
                after = Side(_number(get(test_b)) if test_b else None)
            if before.value is None and after.value is None:
                continue
            rows.append(Row(subject, label, before, after,
                            describe_change(before, after, kind, True if kind == "accuracy" else None)))
    return rows


def differences_in_setup(first: RunAnalysis, second: RunAnalysis) -> list[str]:
    """What makes the two runs less comparable: another profile, model, data set or executor."""
    def facts(analysis: RunAnalysis) -> dict[str, Any]:
        settings = analysis.settings or {}
        return {"profile": analysis.profile_name, "model": analysis.model_name or DEFAULT_MODEL,
                "fingerprint": analysis.fingerprint, "executor": settings.get("executor")}

    a, b = facts(first), facts(second)
    return [f"the runs differ in {what}: {a[key]!r} vs {b[key]!r}"
            for key, what in (("profile", "profile"), ("model", "model"), ("fingerprint", "data (fingerprint)"),
                              ("executor", "executor")) if a[key] != b[key]]


def shared_notes(first: RunAnalysis, second: RunAnalysis) -> list[str]:
    """Each run's one line on a shared machine (the speed section's and the serving section's), when it has one."""
    return [f"run {name} ({analysis.run_id}): {text}" for name, analysis in (("A", first), ("B", second))
            for section in (analysis.speed, analysis.serving) if (text := (section or {}).get("shared"))]
