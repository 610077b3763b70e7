"""The run analysis as a typed model: what ``ensemble.json`` holds and everything after it reads.

``harness.scoring.analysis.analyse`` builds a ``RunAnalysis``; the end of a run adds
the run's settings, job statuses and the harness's own figures; the baseline
checks, the run history, the thumbnails and the report read it by attribute.
On disk it is ``<run>/ensemble.json``: ``to_json`` writes the same keys the
dict-based analysis wrote (schema 2), and ``read_analysis`` reads such a file
back, including older schema-2 files that lack figures added since (FLOPs,
comparisons with the best member, the harness's timings read as absent; the
validation summary the report needs is worked out from the run's own
numbers). Another schema is refused with one line that says how to redo it.

Sections with many keys that only the report lays out (the per-image table,
the rescue counts and examples, the recommendation, the run settings, job
statuses, reliability bins) stay plain JSON objects inside the model.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.errors import ResultError
from harness.workload.layout import DEFAULT_MODEL

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (2,)


class _Record:
    """JSON round trip for the model's dataclasses.

    ``_nested`` names fields holding another record (or a dict of records);
    ``_omit_if_none`` names keys the file leaves out rather than writing null.
    """

    _nested: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    _omit_if_none: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]):
        known = {f.name for f in dataclasses.fields(cls)}
        values = {}
        for key, value in data.items():
            if key not in known:
                continue
            convert = cls._nested.get(key)
            values[key] = convert(value) if convert is not None and value is not None else value
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in self._omit_if_none:
                continue
            out[f.name] = _plain(value)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_json()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _records(kind: type[_Record]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    return lambda data: {name: kind.from_json(row) for name, row in data.items()}


@dataclass
class Metrics(_Record):
    """One set of predictions scored against the labels (``harness.scoring.metrics.summary``)."""

    accuracy: float
    nll: float | None = None
    ece: float | None = None
    brier: float | None = None


@dataclass
class MemberFigures(_Record):
    """One backend of the run: how its jobs ended, its training and speed figures, its test metrics.

    ``test`` and what follows it exist only for a member whose predictions are
    usable; ``val``, ``temperature`` and ``test_calibrated`` only when the run
    held out a validation split.
    """

    state: str
    reason: str = ""
    train_accuracy: float | None = None
    """Keras's running figure over the last epoch, as the seed printed it."""
    train_loss: float | None = None
    train_accuracy_inference: float | None = None
    """The model in inference mode over a sample of the training split, computed alike on every backend."""
    train_loss_inference: float | None = None
    train_inference_sample: dict[str, Any] | None = None
    """``{"images": scored, "of": training images}``."""
    seed_weight_figure: str | None = None
    """Which training accuracy the seed's weights use for this member (``harness.scoring.gather``)."""
    train_images_per_s: float | None = None
    epoch_seconds: list[float] | None = None
    train_seconds: float | None = None
    inference_images_per_s: float | None = None
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_p99_ms: float | None = None
    peak_rss_mb: dict[str, float | None] = field(default_factory=dict)
    parameters: int | None = None
    environment: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    """The learning curve: one object per epoch."""
    flops: dict[str, float] = field(default_factory=dict)
    """Model FLOPs and utilisation, when the jobs measured them (``analysis.FLOP_FIGURES``)."""
    test: Metrics | None = None
    per_class: list[float | None] | None = None
    confusion: list[list[int]] | None = None
    reliability: dict[str, Any] | None = None
    val: Metrics | None = None
    temperature: float | None = None
    test_calibrated: Metrics | None = None

    _nested: ClassVar = {"test": Metrics.from_json, "val": Metrics.from_json,
                         "test_calibrated": Metrics.from_json}
    _omit_if_none: ClassVar = frozenset({"test", "per_class", "confusion", "reliability", "val",
                                         "temperature", "test_calibrated", "train_accuracy_inference",
                                         "train_loss_inference", "train_inference_sample",
                                         "seed_weight_figure"})

    @property
    def ok(self) -> bool:
        return self.state == "ok"


@dataclass
class VariantFigures(_Record):
    """One ensemble variant (``harness.scoring.variants``) of the usable members."""

    weights: dict[str, float] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    temperature: float | None = None
    test: Metrics | None = None
    val: Metrics | None = None
    reliability: dict[str, Any] | None = None
    gain_over_best: float | None = None
    """Test accuracy over the best member's (negative: below it)."""
    reliability_before: dict[str, Any] | None = None
    test_before: Metrics | None = None
    """A temperature-scaled variant's figures before its temperature."""
    versus_best_member: dict[str, Any] | None = None
    """``better`` per metric (accuracy, nll, ece) and ``all_three``."""

    _nested: ClassVar = {"test": Metrics.from_json, "val": Metrics.from_json,
                         "test_before": Metrics.from_json}
    _omit_if_none: ClassVar = frozenset({"reliability_before", "test_before", "versus_best_member"})


@dataclass
class EnsembleFigures(VariantFigures):
    """The variant the run checks (``method``), with its per-class accuracy and confusion matrix."""

    method: str = "seed"
    per_class: list[float | None] | None = None
    confusion: list[list[int]] | None = None


@dataclass
class BestMember(_Record):
    name: str
    accuracy: float


@dataclass
class Validation(_Record):
    """Whether the run held out a validation split the fitted and calibrated variants can use."""

    available: bool
    seed_faithful: bool = False
    reason: str = ""


@dataclass
class RunAnalysis(_Record):
    """Every member's figures and every ensemble variant of the usable ones, for one run."""

    run_id: str
    method: str
    """The variant reported as "the ensemble" (``--ensemble``)."""
    schema: int = SCHEMA_VERSION
    fingerprint: str | None = None
    classes: list[str] = field(default_factory=list)
    n_test: int = 0
    n_val: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    members: dict[str, MemberFigures] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)
    """Backends without usable predictions, with the reason."""
    variants: dict[str, VariantFigures] = field(default_factory=dict)
    unavailable_variants: dict[str, str] = field(default_factory=dict)
    ensemble: EnsembleFigures | None = None
    ensemble_unavailable: str | None = None
    validation: Validation | None = None
    best_member: BestMember | None = None
    gain_over_best: float | None = None
    recommendation: dict[str, Any] | None = None
    """The variant the validation split favours (``variant``), ``why``, and the ``scores``."""
    pairwise: list[dict[str, Any]] | None = None
    rescue: dict[str, Any] | None = None
    table: dict[str, Any] | None = None
    """The first test images in the seed's per-image format."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The run's run.json, as the session wrote it."""
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    """How each job ended: ``"<backend>/<phase>"`` -> ``JobResult.to_json()``."""
    harness: dict[str, Any] | None = None
    """The harness's own cost: peak memory, concurrency, set-up and gather timings."""
    fidelity: dict[str, Any] | None = None
    """Same weights on every backend: the matrix, the one-step check, the backends named
    (``harness.scoring.fidelity.summarise``); absent from runs made before it."""
    speed: dict[str, Any] | None = None
    """Each backend's speed measured alone, the ceiling, MFU and who is fastest
    (``harness.scoring.speed.summarise``); absent from runs made before it."""
    accuracy_ranking: str | None = None
    """Which member is the most accurate on test data, or who is tied (Wilson 95% intervals)."""
    serving: dict[str, Any] | None = None
    """Each backend served in MLPerf LoadGen's scenarios, judged by LoadGen's rules, its answers audited
    (``harness.scoring.serving.summarise``); absent from runs made before it."""

    _nested: ClassVar = {
        "members": _records(MemberFigures), "variants": _records(VariantFigures),
        "ensemble": EnsembleFigures.from_json, "validation": Validation.from_json,
        "best_member": BestMember.from_json}
    _omit_if_none: ClassVar = frozenset({
        "ensemble_unavailable", "validation", "best_member", "gain_over_best", "recommendation",
        "pairwise", "rescue", "table", "harness", "fidelity", "speed",
        "accuracy_ranking", "serving"})

    @property
    def profile_name(self) -> str | None:
        return (self.settings.get("profile") or {}).get("name")

    @property
    def model_name(self) -> str:
        """The model the run built; the seed's CNN for runs from before models were pluggable."""
        return (self.settings.get("model") or {}).get("name") or DEFAULT_MODEL

    @property
    def usable_members(self) -> dict[str, MemberFigures]:
        return {name: m for name, m in self.members.items() if m.test is not None}

    @property
    def job_states(self) -> set[str]:
        return {status.get("state") for status in self.statuses.values()}


def from_json(data: Mapping[str, Any], source: str = "the analysis") -> RunAnalysis:
    """The model of a parsed ``ensemble.json``; another schema raises ``ResultError``."""
    if not isinstance(data, Mapping):
        raise ResultError(f"{source} does not hold a JSON object; {_REDO}")
    schema = data.get("schema")
    if schema not in READABLE_SCHEMAS:
        raise ResultError(f"{source} has schema {schema!r}, but this harness reads schema "
                          f"{', '.join(map(str, READABLE_SCHEMAS))}; {_REDO}")
    try:
        return RunAnalysis.from_json(_migrate(data))
    except (TypeError, AttributeError, ValueError) as err:
        raise ResultError(f"{source} is malformed ({err}); {_REDO}") from None


def _migrate(data: Mapping[str, Any]) -> dict[str, Any]:
    """Fill in what older schema-2 files lack and the report needs.

    ``validation`` (added with the calibrated variants) follows from the
    run's own numbers: a validation split was available when the run held one
    out and its variants were scored on it; the run was seed-faithful when its
    profile asked for none.
    """
    data = dict(data)
    if data.get("validation") is None:
        profile = (data.get("settings") or {}).get("profile") or {}
        seed_faithful = profile.get("n_val") == 0
        scored = any((v or {}).get("val") for v in (data.get("variants") or {}).values())
        available = bool(data.get("n_val")) and scored
        data["validation"] = {"available": available, "seed_faithful": seed_faithful,
                              "reason": "" if available else "this run held out no validation split"
                              if seed_faithful or not data.get("n_val") else
                              "the analysis predates validation scores; analyse the run again"}
    return data


_REDO = ("analyse the run again with this harness (kbench report <run folder> "
         "--write-analysis)")


def read_analysis(path: Path) -> RunAnalysis:
    """Read a run's ``ensemble.json`` into the model (older schema-2 files included)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ResultError(f"{path} is missing; {_REDO}") from None
    except (OSError, ValueError) as err:
        raise ResultError(f"cannot read {path} ({err}); {_REDO}") from None
    return from_json(data, str(path))
