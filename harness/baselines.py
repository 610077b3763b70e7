"""Stored expectations per profile, and the check of a run against them.

A baseline file (``benchmarks/baselines/<profile>.json`` for the seed's CNN,
``<profile>@<model>.json`` for another model) holds, per backend
and for the ensemble, the expected test accuracy and the tolerance below it
that still passes. Values are recorded from a real run on request (never
automatically) with ``--record-baseline``.

The ensemble entry names the variant it checks (``"method"``, or
``"variant"``: a ``harness.scoring.variants`` name such as ``seed`` or ``fitted+T``;
``seed`` when absent), how far below its best member the ensemble may fall
(``max_gap_to_best_member``), and optionally, like each member, the spread of
test accuracy seen across repeated runs (``spread``, shown in the report).
``assess`` checks a whole analysis at once: the end of a run
(``harness.run_end``) calls it, the report shows its verdicts and the pytest
plugin turns them into passes, failures and skips. A run without a baseline
(a new profile, a backend added later) is not checked: its verdicts say
"no baseline" and how to record one, never a failure unless the caller
requires a baseline.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import names
from harness.errors import BaselineError
from harness.models import key as model_key
from harness.scoring import variants
from harness.scoring.record import RunAnalysis
from harness.workload.layout import DEFAULT_MODEL, atomic_write_json

SCHEMA_VERSION = 1
DEFAULT_TOLERANCE = {"smoke": 0.08, "default": 0.04, "standard": 0.03, "full": 0.02}
MARGIN_TO_BEST = {"smoke": 0.06, "default": 0.02, "standard": 0.01, "full": 0.01}
"""How far below its best member an ensemble may fall before its case fails. Smoke
members are barely trained and scored on 500 images (one standard error is about
0.02), so its margin is wide; it still catches an ensemble that is plainly broken.

``standard`` (measured, run standard-1, 2026-11-30): the five members, which compute
the same function (fidelity max |dp| 5e-7) from their own initial weights, reached
66.3-67.5% on the 10,000 test images (standard deviation 0.48 points); the 95% Wilson
half-width of one accuracy is 0.9 points. A tolerance of 3 points is about six of
those standard deviations and three half-widths: a rerun of unchanged code stays
inside it, a real loss of training quality does not. The seed ensemble reached 1.1
points above its best member, so a margin of 1 point fails an ensemble that has
lost that gain and fallen below its best member."""
DEFAULT_MARGIN_TO_BEST = 0.02
RECORD_HINT = "record one with --record-baseline from a run you trust"
NO_BASELINE = "no baseline"
"""What the report says where a verdict would be, when there is nothing to check against."""


@dataclass(frozen=True)
class Verdict:
    """One accuracy against its stored expectation; ``passed`` is None when there is none."""

    subject: str
    passed: bool | None
    measured: float | None
    expected: float | None = None
    tolerance: float | None = None
    spread: float | None = None
    note: str = ""
    """Why nothing was checked (``passed`` None), in one sentence that names the fix."""

    @property
    def message(self) -> str:
        if self.note:
            return self.note
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


def path_for(directory: Path, profile: str, model: str = DEFAULT_MODEL) -> Path:
    """``<directory>/<profile>.json`` for the seed's CNN, ``<profile>@<model>.json`` for another model.

    A profile or model name that could reach outside the folder is refused.
    """
    names.check(profile, "profile name", "smoke")
    names.check(model, "model name", "resnet-small")
    return Path(directory) / f"{model_key(profile, model)}.json"


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


def absent(path: Path | None, profile: str | None) -> str:
    """The one line for a run whose profile has no baseline file."""
    where = f" (no file {path})" if path else " (no baseline folder was given)"
    return f"no baseline for profile {profile or 'unknown'}{where}; accuracy is not checked: {RECORD_HINT}"


def no_entry(path: Path, backend: str) -> str:
    """The one line for a backend the baseline file does not list (say, one added later)."""
    return f"baseline file {path} has no entry for {backend}, so its accuracy is not checked; {RECORD_HINT}"


def other_data(path: Path, recorded: str, measured_on: str | None) -> str:
    """The one line for a baseline recorded on other images than the run's (another data set, the sample)."""
    return (f"baseline file {path} was recorded on other data (fingerprint {recorded[:12]}, this run's "
            f"{str(measured_on)[:12]}), so accuracy is not checked against it; {RECORD_HINT}")


def _recorded_on_other_data(baseline: dict, fingerprint: str | None) -> bool:
    recorded = baseline.get("data_fingerprint")
    return bool(recorded and fingerprint and recorded != fingerprint)


def member_verdict(path: Path | None, profile: str | None, backend: str, measured: float,
                   fingerprint: str | None = None) -> Verdict:
    """One backend's verdict straight from the baseline file; never raises.

    Not checked (``passed`` None) without a file, an entry for the backend, or
    when the baseline was recorded on other data than ``fingerprint``; a file
    that cannot be used fails, with its problem as the message.
    """
    if path is None or not Path(path).exists():
        return Verdict(backend, None, measured, note=absent(path, profile))
    try:
        baseline = load(path)
    except BaselineError as err:
        return Verdict(backend, False, measured, note=str(err))
    if _recorded_on_other_data(baseline, fingerprint):
        return Verdict(backend, None, measured, note=other_data(path, baseline["data_fingerprint"], fingerprint))
    return check_member(baseline, path, backend, measured)


def ensemble_variant(baseline: dict) -> str:
    """The variant the baseline's ensemble entry checks (``seed`` when it names none)."""
    entry = baseline["ensemble"]
    return variants.canonical(entry.get("variant", entry.get("method", "seed")))


def check_member(baseline: dict, path: Path, backend: str, measured: float) -> Verdict:
    """The backend's verdict; not checked (``passed`` None) when the file has no entry for it."""
    entry = baseline["members"].get(backend)
    if entry is None:
        return Verdict(backend, None, measured, note=no_entry(path, backend))
    return _verdict(backend, measured, entry)


def check_ensemble_variant(baseline: dict, path: Path, analysis: RunAnalysis) -> Verdict:
    """Check the accuracy of the variant the baseline names, whatever ``--ensemble`` chose."""
    name = ensemble_variant(baseline)
    variant = analysis.variants.get(name)
    if variant is None:
        why = analysis.unavailable_variants.get(name) or "no backend finished"
        raise BaselineError(f"baseline file {path} checks the {name} ensemble, which this run could "
                            f"not make: {why}; run a profile that can, or record a baseline for "
                            "another variant")
    return _verdict(f"ensemble ({name})", variant.test.accuracy, baseline["ensemble"])


def gap_margin(baseline: dict | None, profile: str | None) -> float:
    """How far below its best member an ensemble may fall: the baseline's, else the profile's."""
    if baseline is not None and "max_gap_to_best_member" in baseline.get("ensemble", {}):
        return float(baseline["ensemble"]["max_gap_to_best_member"])
    return MARGIN_TO_BEST.get(profile or "", DEFAULT_MARGIN_TO_BEST)


def check_gap(analysis: RunAnalysis, variant: str, margin: float) -> GapVerdict:
    """Is the named ensemble variant within ``margin`` of the best member's test accuracy?"""
    name = variants.canonical(variant)
    measured = analysis.variants[name].test.accuracy
    best = analysis.best_member
    return GapVerdict(f"The ensemble ({name})", measured >= best.accuracy - margin - 1e-12,
                      measured, best.name, best.accuracy, margin)


@dataclass
class Assessment:
    """Every baseline verdict of one run: what the report shows and the plugin passes or fails.

    ``state`` is ``checked``, ``recorded`` (this run wrote the baseline, so
    nothing was checked), ``missing`` (no file, or one recorded on other data: nothing is checked) or
    ``invalid`` (a file that cannot be used: ``message`` says why). The gap to
    the best member is judged either way, with the profile's default margin
    when there is no usable baseline.
    """

    state: str
    path: Path | None
    message: str = ""
    variant: str | None = None
    members: dict[str, Verdict] = field(default_factory=dict)
    """Every member with test metrics; not checked (``passed`` None) without an entry."""
    ensemble: Verdict | None = None
    ensemble_problem: str = ""
    """Why the ensemble could not be checked against a usable baseline (a variant it cannot make)."""
    gap: GapVerdict | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON the report reads."""
        ensemble = None
        if self.ensemble is not None:
            ensemble = _verdict_json(self.ensemble)
        elif self.ensemble_problem:
            ensemble = {"subject": f"ensemble ({self.variant})", "passed": False,
                        "message": self.ensemble_problem}
        gap = None
        if self.gap is not None:
            gap = {"passed": self.gap.passed, "measured": self.gap.measured, "best": self.gap.best_name,
                   "best_accuracy": self.gap.best_accuracy, "margin": self.gap.margin,
                   "message": self.gap.message}
        return {"path": str(self.path) if self.path else None, "state": self.state,
                "message": self.message, "variant": self.variant,
                "members": [_verdict_json(v) for v in self.members.values()],
                "ensemble": ensemble, "gap": gap}


def assess(analysis: RunAnalysis, path: Path | None, recording: bool = False) -> Assessment:
    """Every baseline verdict for a run; never raises for a missing or bad file."""
    out = Assessment(state="missing", path=Path(path) if path else None)
    baseline = None
    if recording:
        out.state = "recorded"
        out.message = "this run recorded the baseline, so nothing was checked against it"
    elif path is None or not Path(path).exists():
        out.message = absent(path, analysis.profile_name)
    else:
        try:
            baseline = load(path)
            out.state = "checked"
        except BaselineError as err:
            out.state = "invalid"
            out.message = str(err)
        if baseline and _recorded_on_other_data(baseline, analysis.fingerprint):
            out.message = other_data(path, baseline["data_fingerprint"], analysis.fingerprint)
            out.state, baseline = "missing", None
    out.variant = ensemble_variant(baseline) if baseline else analysis.method or "seed"
    if baseline:
        for name, row in analysis.usable_members.items():
            out.members[name] = check_member(baseline, path, name, row.test.accuracy)
        try:
            out.ensemble = check_ensemble_variant(baseline, path, analysis)
        except BaselineError as err:
            out.ensemble_problem = str(err)
    if out.variant in analysis.variants and analysis.best_member:
        out.gap = check_gap(analysis, out.variant, gap_margin(baseline, analysis.profile_name))
    return out


def _verdict_json(verdict: Verdict) -> dict[str, Any]:
    if verdict.passed is None:
        return {"subject": verdict.subject, "passed": None, "message": verdict.message}
    return {"subject": verdict.subject, "passed": verdict.passed, "measured": verdict.measured,
            "expected": verdict.expected, "tolerance": verdict.tolerance,
            "spread": verdict.spread, "message": verdict.message}


def _verdict(subject: str, measured: float, entry: dict) -> Verdict:
    expected, tolerance = float(entry["test_accuracy"]), float(entry["tolerance"])
    return Verdict(subject, measured >= expected - tolerance - 1e-12, measured, expected, tolerance,
                   entry.get("spread"))


def record(path: Path, profile: str, analysis: RunAnalysis, tolerance: float | None = None,
           history: list[dict] | None = None) -> dict:
    """Write the run's measured accuracies as the new baseline (called only on request).

    With ``history`` (earlier runs' ``harness.history`` entries), each entry
    also gets the ``spread`` (standard deviation) of test accuracy over this run
    and the earlier runs on the same data, when there are at least three.
    """
    if analysis.ensemble is None:
        raise BaselineError("this run has no ensemble (no backend finished); nothing to record")
    tol = DEFAULT_TOLERANCE.get(profile, 0.05) if tolerance is None else tolerance
    members = {name: {"test_accuracy": round(row.test.accuracy, 4), "tolerance": tol}
               for name, row in analysis.usable_members.items()}
    for name, entry in members.items():
        spread = _spread(history, analysis, lambda h, n=name: (h.get("members", {}).get(n) or {})
                         .get("test_accuracy"), entry["test_accuracy"])
        if spread is not None:
            entry["spread"] = spread
    data = {
        "schema": SCHEMA_VERSION,
        "profile": profile,
        "recorded_from_run": analysis.run_id,
        "recorded_at": dt.datetime.now().isoformat(timespec="seconds"),
        "data_fingerprint": analysis.fingerprint,
        "model": analysis.model_name,
        "model_sha256": (analysis.settings.get("model") or {}).get("sha256"),
        "members": members,
        "ensemble": {"method": analysis.method,
                     "test_accuracy": round(analysis.ensemble.test.accuracy, 4),
                     "tolerance": tol,
                     "max_gap_to_best_member": MARGIN_TO_BEST.get(profile, DEFAULT_MARGIN_TO_BEST)},
    }
    spread = _spread(history, analysis, lambda h: (h.get("ensemble") or {}).get("accuracy")
                     if h.get("method") == analysis.method else None,
                     data["ensemble"]["test_accuracy"])
    if spread is not None:
        data["ensemble"]["spread"] = spread
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(str(path), data)
    return data


def _spread(history: list[dict] | None, analysis: RunAnalysis, value_of, current: float
            ) -> float | None:
    """Standard deviation of a test accuracy over this run and earlier ones on the same data."""
    if not history:
        return None
    values = [value_of(h) for h in history if h.get("fingerprint") == analysis.fingerprint
              and h.get("run_id") != analysis.run_id]
    values = [float(v) for v in values if isinstance(v, (int, float))] + [float(current)]
    if len(values) < 3:
        return None
    mean = sum(values) / len(values)
    return round((sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5, 4)
