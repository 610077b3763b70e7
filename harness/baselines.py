"""Stored expectations per profile, and the check of a run against them.

A baseline file (``benchmarks/baselines/<profile>.json``) holds, per backend
and for the ensemble, the expected test accuracy and the tolerance below it
that still passes. Values are recorded from a real run on request (never
automatically) with ``--record-baseline``.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def path_for(directory: Path, profile: str) -> Path:
    return Path(directory) / f"{profile}.json"


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
    return data


def _check_entry(path: Path, name: str, entry: Any, fix: str) -> None:
    if not isinstance(entry, dict):
        raise BaselineError(f"baseline file {path}: entry {name!r} is not an object; {fix}")
    for key in ("test_accuracy", "tolerance"):
        value = entry.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
            raise BaselineError(f"baseline file {path}: {name}.{key} must be a number from 0 to 1, "
                                f"not {value!r}; {fix}")


def check_member(baseline: dict, path: Path, backend: str, measured: float) -> Verdict:
    entry = baseline["members"].get(backend)
    if entry is None:
        raise BaselineError(f"baseline file {path} has no entry for {backend}; record one with "
                            "--record-baseline from a run you trust")
    return _verdict(backend, measured, entry)


def check_ensemble(baseline: dict, measured: float) -> Verdict:
    entry = baseline["ensemble"]
    return _verdict(f"ensemble ({entry.get('method', 'seed')})", measured, entry)


def _verdict(subject: str, measured: float, entry: dict) -> Verdict:
    expected, tolerance = float(entry["test_accuracy"]), float(entry["tolerance"])
    return Verdict(subject, measured >= expected - tolerance - 1e-12, measured, expected, tolerance)


def record(path: Path, profile: str, analysis: dict[str, Any], tolerance: float | None = None) -> dict:
    """Write the run's measured accuracies as the new baseline (called only on request)."""
    if analysis.get("ensemble") is None:
        raise BaselineError("this run has no ensemble (no backend finished); nothing to record")
    tol = DEFAULT_TOLERANCE.get(profile, 0.05) if tolerance is None else tolerance
    members = {name: {"test_accuracy": round(row["test"]["accuracy"], 4), "tolerance": tol}
               for name, row in analysis["members"].items() if "test" in row}
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
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(str(path), data)
    return data
