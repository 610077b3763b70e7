"""What a job's result file may hold: each figure the harness reads, with its type and range.

A result file is written by a job, but it is a plain JSON file in a shared
folder: it may have been edited by hand, or written by a job with a bug. The
run store checks every result it reads against this table, so a training
accuracy of 7.0 or ``"abc"`` is never reused nor averaged into an ensemble:
the result is refused with one line naming the field, and the job runs again
(on resume) or its backend is left out (in a report).

Each phase lists the fields the scoring and the report read. A field may be
missing or null (older results lack some), but when present it must be what
the table says (an object the harness reads into, or a list, is never null).
A loss Keras reports may be negative (a model file may compile its own loss); the
harness's own figures (accuracies, its NLL, times, rates) have their ranges. On top of that, no number anywhere in a result may be NaN or
infinite (Python's JSON reader accepts both). Pure: no file is read here.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    """What a field must be: its name in messages, and the test."""

    said: str
    fits: Callable[[Any], bool]
    nullable: bool = True
    """Whether null stands for "not measured" (a figure); an object or a list the harness reads into is never null."""


LARGEST = 1e15
"""No figure of a job comes near it (seconds, images, FLOPs per image, megabytes); a larger one is an edit,
and sums of such (1e308 ms step times) would overflow to infinity in the statistics."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and abs(value) <= LARGEST


OBJECT = Kind("a JSON object", lambda v: isinstance(v, dict))
READ_INTO = Kind("a JSON object", lambda v: isinstance(v, dict), nullable=False)
"""An object the harness reads into as it is (``result.get("final", {})``): never null."""
TEXT = Kind("a string", lambda v: isinstance(v, str))
NUMBER = Kind("a number from -1e15 to 1e15", _number)
FRACTION = Kind("a number from 0 to 1", lambda v: _number(v) and 0 <= v <= 1)
AMOUNT = Kind("a number from 0 to 1e15", lambda v: _number(v) and v >= 0)
COUNT = Kind("a whole number from 0 to 1e15",
             lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= LARGEST)
AMOUNTS = Kind("a list of numbers from 0 to 1e15", lambda v: isinstance(v, list) and all(AMOUNT.fits(x) for x in v))
NAMES = Kind("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
FLAG = Kind("true or false", lambda v: isinstance(v, bool))
COUNTS = Kind("a list of whole numbers from 0 to 1e15", lambda v: isinstance(v, list) and all(COUNT.fits(x) for x in v))
LIST = Kind("a list", lambda v: isinstance(v, list), nullable=False)

def _load(at: str) -> tuple[tuple[str, Kind], ...]:
    """A machine-load reading (``harness.workload.machine_load``) at ``at``: what the speed and serving
    figures, and the report, read of it."""
    return ((at, OBJECT), (f"{at}.others_cores", AMOUNT), (f"{at}.others_on_own_cpus_cores", AMOUNT),
            (f"{at}.own_cores", AMOUNT), (f"{at}.machine_busy_cores", AMOUNT), (f"{at}.steal_share", AMOUNT),
            (f"{at}.pressure_some_share", AMOUNT), (f"{at}.seconds", AMOUNT), (f"{at}.contended", FLAG),
            (f"{at}.reasons", NAMES))


_COMMON = (("data", READ_INTO), ("data.fingerprint", TEXT), ("data.classes", NAMES), ("data.sizes", OBJECT),
           ("data.cache_key", TEXT), ("environment", OBJECT), ("settings", OBJECT), ("model", READ_INTO),
           ("timing", READ_INTO), ("flops", OBJECT), ("flops.forward", AMOUNT), ("flops.train", AMOUNT),
           ("peak_rss_mb", AMOUNT), ("cpu", OBJECT), ("files", OBJECT),
           ("files.*", OBJECT), ("files.*.bytes", COUNT), ("files.*.sha256", TEXT), ("environment.threads", OBJECT),
           ("environment.variables", OBJECT), ("settings.threads", COUNT))

FIELDS: dict[str, tuple[tuple[str, Kind], ...]] = {
    "train": _COMMON + (
        ("final", READ_INTO),
        ("final.train_accuracy", FRACTION), ("final.train_accuracy_inference", FRACTION),
        ("final.val_accuracy", FRACTION), ("final.test_accuracy", FRACTION),
        ("final.train_loss", NUMBER), ("final.train_loss_inference", AMOUNT),
        ("final.val_loss", NUMBER), ("final.test_loss", NUMBER), ("final.train_inference_sample", OBJECT),
        ("history", LIST), ("history[]", OBJECT), ("history[].epoch", COUNT),
        ("history[].accuracy", FRACTION), ("history[].val_accuracy", FRACTION),
        ("history[].loss", NUMBER), ("history[].val_loss", NUMBER), ("history[].seconds", AMOUNT),
        ("history[].images", COUNT), ("history[].images_per_s", AMOUNT),
        ("timing.steady_images_per_s", AMOUNT), ("timing.steady_basis", TEXT), ("timing.epoch_seconds", AMOUNTS),
        ("timing.train_seconds", AMOUNT), ("timing.first_epoch_s", AMOUNT), ("timing.warmup_s", AMOUNT),
        ("timing.startup_s", AMOUNT), ("timing.data_load_s", AMOUNT), ("model.parameters", COUNT),
    ),
    "predict": _COMMON + (
        ("outputs", READ_INTO), ("outputs.*", OBJECT), ("outputs.*.rows", COUNT), ("outputs.*.columns", COUNT),
        ("outputs.*.probs", TEXT), ("outputs.*.labels", TEXT), ("test", READ_INTO), ("test.accuracy", FRACTION), ("test.loss", AMOUNT),
        ("timing.images_per_s", AMOUNT), ("timing.p50_ms", AMOUNT), ("timing.p90_ms", AMOUNT),
        ("timing.p99_ms", AMOUNT), ("timing.warmup_s", AMOUNT), ("timing.startup_s", AMOUNT),
    ),
    "fidelity": _COMMON + (
        ("images", COUNT), ("outputs", TEXT), ("sources", OBJECT), ("step", OBJECT),
        ("step.loss_keras!", NUMBER), ("step.loss_numpy", NUMBER), ("step.learning_rate", NUMBER),
        ("step.sensitivity", LIST), ("sources.*", OBJECT), ("sources.*.rows", COUNT),
        ("sources.*.weights_sha256", TEXT),
        ("step.images", COUNT), ("step.reference_weights", TEXT), ("step.gradients", TEXT),
    ),
    "speed": _COMMON + (
        ("train", OBJECT), ("train.step_s", AMOUNTS), ("train.warmup_s", AMOUNT),
        ("train.images_per_step", COUNT), ("train.segments", LIST), ("train.segments[]", READ_INTO),
        ("train.segments[].first_step", COUNT), ("train.segments[].steps", COUNT),
        *_load("train.segments[].load"),
        ("predict", OBJECT), ("predict.batch_s", AMOUNTS), ("predict.images_per_batch", COUNT),
        ("load", OBJECT), *_load("load.train"), *_load("load.predict"), ("load.quiet_wait", OBJECT),
        ("ceiling", OBJECT), ("ceiling.machine", OBJECT), ("ceiling.threads", COUNT), ("ceiling.kernels", OBJECT),
        ("ceiling.kernels.*", READ_INTO), ("ceiling.kernels.*.gflops", AMOUNT), ("ceiling.theoretical_peak", OBJECT),
        ("ceiling.theoretical_peak.gflops", AMOUNT),
        ("settings.steps", COUNT), ("settings.batch_size", COUNT), ("settings.predict_batch_size", COUNT),
        ("settings.warmup_steps", COUNT), ("settings.predict_batches", COUNT),
    ),
    "serve": _COMMON + (
        ("single_stream", OBJECT), ("single_stream.latency_s", AMOUNTS), ("single_stream.duration_s", AMOUNT),
        ("single_stream.wall_s", AMOUNT), ("single_stream.first_query_s", AMOUNT), *_load("single_stream.load"),
        ("offline", OBJECT), ("offline.batches", LIST), ("offline.batches[]", READ_INTO),
        ("offline.batches[].batch_s!", AMOUNTS), ("offline.batches[].batch!", COUNT),
        ("offline.batches[].images!", COUNT), ("offline.batches[].wall_s", AMOUNT),
        ("offline.batches[].first_query_s", AMOUNT), *_load("offline.batches[].load"),
        ("server", OBJECT), ("server.bound_s!", AMOUNT), ("server.first_rate", AMOUNT),
        ("server.trials", LIST), ("server.trials[]", READ_INTO), ("server.trials[].latency_s!", AMOUNTS),
        ("server.trials[].rate!", AMOUNT), ("server.trials[].queries!", COUNT), ("server.trials[].passed!", FLAG),
        ("server.trials[].stopped_early", FLAG), ("server.trials[].scheduled_s", AMOUNT),
        ("server.trials[].first_query_s", AMOUNT), ("server.trials[].answered", COUNT),
        ("server.trials[].wall_s", AMOUNT), *_load("server.trials[].load"),
        ("server.search", OBJECT), ("server.search.peak_rate", AMOUNT), ("server.search.failed_rate", AMOUNT),
        ("server.search.finished", FLAG), ("server.search.max_trials", COUNT),
        ("first_answer_s", AMOUNT), ("fault", TEXT), ("audit", OBJECT), ("audit.file", TEXT),
        ("settings.seconds", AMOUNT), ("settings.min_queries", COUNT), ("settings.offline_batches", COUNTS),
        ("settings.sweep_seconds", AMOUNT), ("settings.rate_trials", COUNT), ("settings.p99_bound_ms", AMOUNT),
        ("settings.max_batch", COUNT), ("settings.server_percentile", FRACTION),
    ),
}
"""Per phase: each field the harness reads (a dotted path; ``[]`` for each item of a list, ``*`` for each value
of an object, a trailing ``!`` where its object must hold it, not null) and what it must be."""


def problem(phase: str, result: dict) -> str | None:
    """Why ``result`` (a job's result file, already a JSON object) holds a value the harness cannot use, or
    None. The phrase names the field: ``final.train_accuracy_inference is 7.0, not a number from 0 to 1``."""
    bad = _not_finite(result, "")
    if bad:
        return f"{bad} is not a finite number"
    for path, kind in FIELDS.get(phase, ()):
        required = path.endswith("!")
        for where, value in _values(result, path.rstrip("!").split("."), required=required):
            if value is _MISSING:
                return f"{where} is missing"
            if (value is not None or required or not kind.nullable) and not kind.fits(value):
                return f"{where} is {_shown(value)}, not {kind.said}"
    return None


_MISSING = object()


def _values(node: Any, parts: list[str], where: str = "", required: bool = False) -> list[tuple[str, Any]]:
    """Every value at a dotted path under ``node`` (items of a list for ``name[]``, every value of an object
    for ``*``), with where it is; ``_MISSING`` where a ``required`` last part is not there."""
    if not parts:
        return [(where, node)]
    if not isinstance(node, dict):
        return []  # the containing object's own kind is checked by its own entry
    head, rest = parts[0], parts[1:]
    if head == "*":
        return [found for key, value in node.items()
                for found in _values(value, rest, f"{where}.{key}" if where else str(key), required)]
    name, each = (head[:-2], True) if head.endswith("[]") else (head, False)
    here = f"{where}.{name}" if where else name
    if name not in node:
        return [(here, _MISSING)] if required and not rest else []
    value = node[name]
    if not each:
        return _values(value, rest, here, required)
    if not isinstance(value, list):
        return []
    return [found for i, item in enumerate(value) for found in _values(item, rest, f"{here}[{i}]", required)]


def _not_finite(node: Any, where: str) -> str | None:
    """Where the first NaN or infinite number under ``node`` is, or None."""
    if isinstance(node, float) and not math.isfinite(node):
        return where or "the result"
    if isinstance(node, dict):
        for key, value in node.items():
            found = _not_finite(value, f"{where}.{key}" if where else str(key))
            if found:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = _not_finite(value, f"{where}[{i}]")
            if found:
                return found
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
