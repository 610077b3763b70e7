"""Whether the files in a run folder can be trusted: result files, promised outputs, probabilities.

A job is only as good as its files: a result file naming outputs that were
since deleted, overwritten or damaged must never be reused on resume nor
shown in a report. The run store (``harness.run_store``) applies these checks
when it reuses a job on resume and when it reads results back for gathering:

* a result file is a JSON object of this harness's schema;

* the files a job lists under ``files`` in its result (written last, by the
  job itself: size and SHA-256 of each) still match, and so does the result
  file itself (its size and SHA-256 are in the job's status, recorded by the
  harness as the job ended);
* softmax outputs are what the ensemble needs: one row per label, one
  column per class, finite, non-negative, rows summing to 1.

Pure apart from reading the files it is given; no pytest, no executor.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ResultError
from harness.workload import layout

DIVERGED = "holds NaN or infinite values; the model diverged"
"""``probs_problem``'s phrase when the outputs are not finite: the fix is to train again."""
ROW_SUM_TOLERANCE = 1e-3
"""How far a row of probabilities may sum from 1. A float32 softmax over 10 classes is
within ~1e-6 of 1; 1e-3 allows other precisions and still refuses a row that is not a
distribution (the ensemble's weighted vote would silently mis-weight it)."""


def read_json(path: Path) -> dict:
    """A JSON object from a file; ResultError naming the fix when it is missing, unreadable or not one."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ResultError(f"{path} is missing; run the job that writes it") from None
    except OSError as err:
        raise ResultError(f"cannot read {path} ({err.strerror})") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ResultError(f"{path} is truncated or corrupt ({err.msg} at line {err.lineno}); delete it "
                          "and run the job again") from None
    if not isinstance(data, dict):
        raise ResultError(f"{path} does not hold a JSON object; delete it and run the job again")
    return data


def check_schema(data: dict, path: Path) -> None:
    found = data.get("schema")
    if found != layout.SCHEMA_VERSION:
        raise ResultError(f"{path} has schema version {found!r} but this harness reads version "
                          f"{layout.SCHEMA_VERSION}; re-run that job with this harness (or use the harness "
                          "version that wrote it)")


SETTINGS_OBJECTS = ("profile", "dataset", "model", "timing", "host")
"""run.json's keys that hold an object (or are absent, in older runs)."""


def check_settings(data: dict, path: Path) -> None:
    """run.json's keys of the harness's own making are of their type: ResultError naming the key if not."""
    backends = data.get("backends", [])
    if not isinstance(backends, list) or not all(isinstance(name, str) for name in backends):
        raise ResultError(f"{path}: backends is {str(backends)[:40]!r}, not a list of backend names (edited by "
                          "hand?); write it as a list, e.g. [\"tensorflow\", \"jax\"]")
    for key in SETTINGS_OBJECTS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ResultError(f"{path}: {key} is {str(data[key])[:40]!r}, not a JSON object (edited by hand?); "
                              "restore it from a copy, or start a new run")


def result_file_problem(path: Path) -> str | None:
    """Why a job's result file cannot be trusted (missing, corrupt, other schema), or None."""
    try:
        check_schema(read_json(path), path)
    except ResultError as err:
        return str(err)
    return None


def checksum_problem(folder: Path, result: dict[str, Any], promises: Callable[[dict], list[str]]) -> str | None:
    """Why the files the job promised (``promises(result)``) are not all there as it wrote them, or None."""
    records = result.get("files")
    if not isinstance(records, dict):
        return "its result lists no checksums of its files (written by an older harness?), so they cannot be trusted"
    for name in promises(result):
        record = records.get(name)
        path = Path(folder) / name
        if not isinstance(record, dict):
            return f"its result lists no checksum for {name}"
        if not isinstance(record.get("bytes"), int) or not isinstance(record.get("sha256"), str):
            return f"its result lists a damaged checksum for {name}"
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return f"{path} is missing"
        except OSError as err:
            return f"cannot read {path} ({err.strerror})"
        if size != record.get("bytes"):
            return f"{path} has {size} bytes, not the {record.get('bytes')} its job wrote"
        try:
            digest = layout.sha256_file(str(path))
        except OSError as err:
            return f"cannot read {path} ({err.strerror})"
        if digest != record.get("sha256"):
            return f"{path} does not match the checksum its job wrote (changed or damaged since)"
    return None


def result_checksum_problem(path: Path, record: Any) -> str | None:
    """Why a job's result file is not the one its status recorded when the job ended (edited, damaged,
    or the status is from a harness that recorded none), or None."""
    if not isinstance(record, dict):
        return (f"its status records no checksum of {Path(path).name} (written by an older harness, or edited), "
                "so the result cannot be trusted")
    return checksum_problem(Path(path).parent, {"files": {Path(path).name: record}}, lambda result: [Path(path).name])


def probs_problem(probs: np.ndarray, labels: np.ndarray, n_classes: int, rows: Any = None) -> str | None:
    """Why ``probs`` (and their ``labels``) cannot be a member's softmax outputs, or None.

    The phrase completes "<file> ...", e.g. "has 9 columns but the data set has 10 classes".
    """
    if probs.dtype.kind != "f":
        return f"holds {probs.dtype} values, not floating-point probabilities"
    if probs.ndim != 2:
        return f"has shape {probs.shape}, not (images, classes)"
    if probs.shape[1] != n_classes:
        return f"has {probs.shape[1]} columns but the data set has {n_classes} classes"
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        return f"comes with labels of shape {labels.shape} and type {labels.dtype}, not one whole number per image"
    if len(probs) != len(labels):
        return f"has {len(probs)} rows but there are {len(labels)} labels"
    if rows is not None and len(probs) != rows:
        return f"has {len(probs)} rows but its job wrote {rows}"
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        return f"comes with labels outside 0..{n_classes - 1}"
    if not np.all(np.isfinite(probs)):
        return DIVERGED
    if np.any(probs < 0):
        return f"holds negative values (smallest {float(probs.min()):.3g}), so its rows are not probabilities"
    sums = probs.sum(axis=1, dtype=np.float64)
    worst = int(np.argmax(np.abs(sums - 1.0))) if len(sums) else 0
    if len(sums) and abs(sums[worst] - 1.0) > ROW_SUM_TOLERANCE:
        return f"has rows that do not sum to 1 (row {worst} sums to {sums[worst]:.4g})"
    return None


def load_array(path: Path) -> np.ndarray:
    """One ``.npy`` array of a job's outputs; ResultError naming the fix when the file is not one."""
    try:
        return load_npy(Path(path))
    except ValueError as err:
        raise ResultError(f"{err}; run the predict job again") from None


def load_npy(path: Path) -> np.ndarray:
    """One ``.npy`` array; ValueError with a short reason when the file is not one."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{path} is missing") from None
    except (OSError, ValueError, EOFError) as err:
        reason = str(err).split(". ")[0][:100]
        raise ValueError(f"{path} is truncated or corrupt ({reason})") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise ValueError(f"{path} is an archive, not one array")  # noqa: TRY004 (a bad file, not a bad call)
    return array


def outputs_problem(folder: Path, result: dict[str, Any]) -> str | None:
    """Why a predict result's probability files are unsound, or None (used on resume)."""
    outputs = result.get("outputs")
    classes = (result.get("data") or {}).get("classes")
    if not isinstance(outputs, dict) or "test" not in outputs:
        return "its result lists no test outputs"
    if not isinstance(classes, list) or not classes:
        return "its result names no classes"
    for split, info in outputs.items():
        if not isinstance(info, dict) or info.get("probs") != layout.probs_name(split) \
                or info.get("labels") != layout.labels_name(split):
            return f"its result names other files than {layout.probs_name(split)} for the {split} outputs"
        try:
            probs = load_npy(Path(folder) / info["probs"])
            labels = load_npy(Path(folder) / info["labels"])
        except ValueError as err:
            return str(err)
        problem = probs_problem(probs, labels, len(classes), info.get("rows"))
        if problem:
            return f"{Path(folder) / info['probs']} {problem}"
    return None
