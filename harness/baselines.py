"""Stored expectations per profile, and the check of a run against them.

A baseline file (``benchmarks/baselines/<profile>.json``) holds, per backend
and for the ensemble, the expected test accuracy and the tolerance below it
that still passes. Values are recorded from a real run on request (never
automatically) with ``--record-baseline``.

The ensemble entry names the variant it checks (``"method"``, or
``"variant"``: a ``harness.variants`` name such as ``seed`` or ``fitted+T``;
``seed`` when absent), how far below its best member the ensemble may fall
(``max_gap_to_best_member``), and optionally, like each member, the spread of
test accuracy seen across repeated runs (``spread``, shown in the report).
``assess`` checks a whole analysis at once for the report.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import names, variants
from harness.errors import BaselineError
from harness.workload.layout import atomic_write_json

SCHEMA_VERSION = 1
DEFAULT_TOLERANCE = {"smoke": 0.08, "default": 0.04, "full": 0.02}
MARGIN_TO_BEST = {"smoke": 0.06, "default": 0.02, "full": 0.01}
"""How far below its best member an ensemble may fall before its case fails. Smoke
members are barely trained and scored on 500 images (one standard error is about
0.02), so its margin is wide; it still catches an ensemble that is plainly broken."""
DEFAULT_MARGIN_TO_BEST = 0.02


@dataclass(frozen=True)
class Verdict:
    subject: str
    passed: bool
    measured: float
    expected: float
    tolerance: float

    @property
    def message(self) -> str:
        verb = "meets" if self.passed else "is below"
        return (f"{self.subject} test accuracy {self.measured:.4f} {verb} the baseline: expected at least "
                f"{self.expected:.4f} - tolerance {self.tolerance:.4f} = {self.expected - self.tolerance:.4f}")


@dataclass(frozen=True)
class GapVerdict:
    """Whether the ensemble stays within ``margin`` of its best member's test accuracy."""

    subject: str
    passed: bool
    measured: float
    best_name: str
    best_accuracy: float
    margin: float

    @property
    def message(self) -> str:
        gap = self.measured - self.best_accuracy
        where = f"{gap:.4f} above" if gap >= 0 else f"{-gap:.4f} below"
        verdict = ("so it is not worse than its best member by more than the margin"
                   if self.passed else "more than the allowed margin")
        return (f"{self.subject} test accuracy {self.measured:.4f} is {where} its best member "
                f"{self.best_name} ({self.best_accuracy:.4f}); margin {self.margin:.4f}, {verdict}")


def path_for(directory: Path, profile: str) -> Path:
    """``<directory>/<profile>.json``; a profile name that could reach outside the folder is refused."""
    return Path(directory) / f"{names.check(profile, 'profile name', 'smoke')}.json"


def load(path: Path) -> dict[str, Any]:
    """Read and check a baseline file; every problem names the file and the fix."""
    fix = "fix it, or record a new one with --record-baseline from a run you trust"
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BaselineError(f"no baseline file {path}; record one with --record-baseline from a run you "
                            "trust") from None
    except ValueError as err:
        raise BaselineError(f"baseline file {path} is not valid JSON ({err}); {fix}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
        raise BaselineError(f"baseline file {path} lacks \"schema\": {SCHEMA_VERSION}; {fix}")
    for section in ("members", "ensemble"):
        if not isinstance(data.get(section), dict):
            raise BaselineError(f"baseline file {path} has no \"{section}\" object; {fix}")
    for name, entry in list(data["members"].items()) + [("ensemble", data["ensemble"])]:
        _check_entry(path, name, entry, fix)
    for key in ("variant", "method"):
        if key in data["ensemble"]:
            try:
                variants.canonical(data["ensemble"][key])
            except ValueError as err:
                raise BaselineError(f"baseline file {path}: ensemble.{key}: {err}; {fix}") from None
    return data


def _check_entry(path: Path, name: str, entry: Any, fix: str) -> None:
    if not isinstance(entry, dict):
        raise BaselineError(f"baseline file {path}: entry {name!r} is not an object; {fix}")
    for key in ("test_accuracy", "tolerance", "max_gap_to_best_member", "spread"):
        if key not in entry and key not in ("test_accuracy", "tolerance"):
            continue
        value = entry.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
            raise BaselineError(f"baseline file {path}: {name}.{key} must be a number from 0 to 1, "
                                f"not {value!r}; {fix}")


def ensemble_variant(baseline: dict) -> str:
    """The variant the baseline's ensemble entry checks (``seed`` when it names none)."""
    entry = baseline["ensemble"]
    return variants.canonical(entry.get("variant", entry.get("method", "seed")))


def check_member(baseline: dict, path: Path, backend: str, measured: float) -> Verdict:
    entry = baseline["members"].get(backend)
    if entry is None:
        raise BaselineError(f"baseline file {path} has no entry for {backend}; record one with "
                            "--record-baseline from a run you trust")
    return _verdict(backend, measured, entry)


def check_ensemble(baseline: dict, measured: float) -> Verdict:
    entry = baseline["ensemble"]
    return _verdict(f"ensemble ({entry.get('method', 'seed')})", measured, entry)


def check_ensemble_variant(baseline: dict, path: Path, analysis: dict[str, Any]) -> Verdict:
    """Check the accuracy of the variant the baseline names, whatever ``--ensemble`` chose."""
    name = ensemble_variant(baseline)
    variant = analysis.get("variants", {}).get(name)
    if variant is None:
        why = analysis.get("unavailable_variants", {}).get(name) or "no backend finished"
        raise BaselineError(f"baseline file {path} checks the {name} ensemble, which this run could "
                            f"not make: {why}; run a profile that can, or record a baseline for "
                            "another variant")
    return _verdict(f"ensemble ({name})", variant["test"]["accuracy"], baseline["ensemble"])


def gap_margin(baseline: dict | None, profile: str | None) -> float:
    """How far below its best member an ensemble may fall: the baseline's, else the profile's."""
    if baseline is not None and "max_gap_to_best_member" in baseline.get("ensemble", {}):
        return float(baseline["ensemble"]["max_gap_to_best_member"])
    return MARGIN_TO_BEST.get(profile or "", DEFAULT_MARGIN_TO_BEST)


def check_gap(analysis: dict[str, Any], variant: str, margin: float) -> GapVerdict:
    """Is the named ensemble variant within ``margin`` of the best member's test accuracy?"""
    name = variants.canonical(variant)
    measured = analysis["variants"][name]["test"]["accuracy"]
    best = analysis["best_member"]
    return GapVerdict(f"The ensemble ({name})", measured >= best["accuracy"] - margin - 1e-12,
                      measured, best["name"], best["accuracy"], margin)


def assess(analysis: dict[str, Any], path: Path | None, recording: bool = False) -> dict[str, Any]:
    """Every baseline verdict for a run, JSON-ready, for the report; never raises for a bad file.

    ``state`` is ``checked``, ``recorded`` (this run wrote the baseline),
    ``missing`` or ``invalid`` (with ``message``); the gap to the best member
    is judged either way, with the profile's default margin when there is no
    usable baseline.
    """
    profile = ((analysis.get("settings") or {}).get("profile") or {}).get("name")
    out: dict[str, Any] = {"path": str(path) if path else None, "state": "missing", "message": "",
                           "members": [], "ensemble": None, "gap": None, "variant": None}
    baseline = None
    if recording:
        out["state"] = "recorded"
        out["message"] = "this run recorded the baseline, so nothing was checked against it"
    elif path is None:
        out["message"] = "no baseline folder was given"
    else:
        try:
            baseline = load(path)
            out["state"] = "checked"
        except BaselineError as err:
            out["state"] = "invalid" if Path(path).exists() else "missing"
            out["message"] = str(err)
    variant = ensemble_variant(baseline) if baseline else analysis.get("method") or "seed"
    out["variant"] = variant
    if baseline:
        for name, row in analysis.get("members", {}).items():
            entry = baseline["members"].get(name)
            if "test" in row and entry is not None:
                out["members"].append(_verdict_json(_verdict(name, row["test"]["accuracy"], entry),
                                                    entry))
            elif entry is None and "test" in row:
                out["members"].append({"subject": name, "passed": None,
                                       "message": f"{path} has no entry for {name}"})
        try:
            out["ensemble"] = _verdict_json(check_ensemble_variant(baseline, path, analysis),
                                            baseline["ensemble"])
        except BaselineError as err:
            out["ensemble"] = {"subject": f"ensemble ({variant})", "passed": False,
                               "message": str(err)}
    if variant in analysis.get("variants", {}) and analysis.get("best_member"):
        gap = check_gap(analysis, variant, gap_margin(baseline, profile))
        out["gap"] = {"passed": gap.passed, "measured": gap.measured, "best": gap.best_name,
                      "best_accuracy": gap.best_accuracy, "margin": gap.margin,
                      "message": gap.message}
    return out


def _verdict_json(verdict: Verdict, entry: dict) -> dict[str, Any]:
    return {"subject": verdict.subject, "passed": verdict.passed, "measured": verdict.measured,
            "expected": verdict.expected, "tolerance": verdict.tolerance,
            "spread": entry.get("spread"), "message": verdict.message}


def _verdict(subject: str, measured: float, entry: dict) -> Verdict:
    expected, tolerance = float(entry["test_accuracy"]), float(entry["tolerance"])
    return Verdict(subject, measured >= expected - tolerance - 1e-12, measured, expected, tolerance)


def record(path: Path, profile: str, analysis: dict[str, Any], tolerance: float | None = None,
           history: list[dict] | None = None) -> dict:
    """Write the run's measured accuracies as the new baseline (called only on request).

    With ``history`` (earlier runs' ``harness.history`` entries), each entry
    also gets the ``spread`` (standard deviation) of test accuracy over this run
    and the earlier runs on the same data, when there are at least three.
    """
    if analysis.get("ensemble") is None:
        raise BaselineError("this run has no ensemble (no backend finished); nothing to record")
    tol = DEFAULT_TOLERANCE.get(profile, 0.05) if tolerance is None else tolerance
    members = {name: {"test_accuracy": round(row["test"]["accuracy"], 4), "tolerance": tol}
               for name, row in analysis["members"].items() if "test" in row}
    for name, entry in members.items():
        spread = _spread(history, analysis, lambda h, n=name: (h.get("members", {}).get(n) or {})
                         .get("test_accuracy"), entry["test_accuracy"])
        if spread is not None:
            entry["spread"] = spread
    data = {
        "schema": SCHEMA_VERSION,
        "profile": profile,
        "recorded_from_run": analysis["run_id"],
        "recorded_at": dt.datetime.now().isoformat(timespec="seconds"),
        "data_fingerprint": analysis.get("fingerprint"),
        "members": members,
        "ensemble": {"method": analysis["method"],
                     "test_accuracy": round(analysis["ensemble"]["test"]["accuracy"], 4),
                     "tolerance": tol,
                     "max_gap_to_best_member": MARGIN_TO_BEST.get(profile, DEFAULT_MARGIN_TO_BEST)},
    }
    spread = _spread(history, analysis, lambda h: (h.get("ensemble") or {}).get("accuracy")
                     if h.get("method") == analysis["method"] else None,
                     data["ensemble"]["test_accuracy"])
    if spread is not None:
        data["ensemble"]["spread"] = spread
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(str(path), data)
    return data


def _spread(history: list[dict] | None, analysis: dict[str, Any], value_of, current: float
            ) -> float | None:
    """Standard deviation of a test accuracy over this run and earlier ones on the same data."""
    if not history:
        return None
    values = [value_of(h) for h in history if h.get("fingerprint") == analysis.get("fingerprint")
              and h.get("run_id") != analysis.get("run_id")]
    values = [float(v) for v in values if isinstance(v, (int, float))] + [float(current)]
    if len(values) < 3:
        return None
    mean = sum(values) / len(values)
    return round((sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5, 4)
