"""The run history: one JSON line per finished run, one file per profile and model.

Each finished session appends a short summary of its analysis (accuracy,
calibration and speed per backend and for the ensemble) to
``<history-dir>/<profile>.jsonl`` (``<profile>@<model>.jsonl`` for a model other
than the seed's CNN; by default in ``<shared>/history/``), so the report can
show how accuracy and speed moved across earlier runs. Only runs of the same
profile and model are comparable, hence one file each.

The store is append-only text: a run that is finished again (a resumed run)
appends a newer line that replaces the older one when read. Only the file's
last ``TAIL_LINES`` lines are read, so a report costs the same whatever the
history holds. Lines that cannot be read (a torn write, a hand edit, another
schema) are skipped and summarised in one sentence (how many, why, which
file); they never stop the report nor flood it.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import models, names
from harness.errors import ConfigError
from harness.scoring.record import Metrics, RunAnalysis
from harness.workload import layout

SCHEMA_VERSION = 1
DEFAULT_LIMIT = 30
"""Most recent runs ``load`` returns: enough for a trend, few enough to read."""


@dataclass
class History:
    """The earlier runs of one profile, oldest first, and any lines that were skipped."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """One sentence per skipped line: which file and line, and why."""
    path: Path | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def path_for(directory: Path, profile: str, model: str = layout.DEFAULT_MODEL) -> Path:
    """``<directory>/<profile>.jsonl`` for the seed's CNN, ``<profile>@<model>.jsonl`` for another model.

    A profile or model name that could reach outside the folder is refused.
    """
    names.check(profile, "profile name", "smoke")
    names.check(model, "model name", "resnet-small")
    return Path(directory) / f"{models.key(profile, model)}.jsonl"


def stored_keys(directory: Path) -> list[tuple[str, str]]:
    """The (profile, model) pairs that have a history file in ``directory``."""
    found = []
    for path in Path(directory).glob("*.jsonl"):
        profile, _, model = path.stem.partition("@")
        found.append((profile, model or layout.DEFAULT_MODEL))
    return found


def default_dir(shared_dir: Path) -> Path:
    return Path(layout.history_dir(str(shared_dir)))


def _mean(values: Any) -> float | None:
    if not isinstance(values, list) or not values:
        return None
    return float(sum(values) / len(values))


def _scores(test: Metrics | None) -> dict[str, float | None]:
    return {key: getattr(test, key, None) for key in ("accuracy", "nll", "ece")}


def entry(analysis: RunAnalysis, recorded_at: dt.datetime | None = None) -> dict[str, Any]:
    """The one-line summary of a run's analysis that the history keeps."""
    settings = analysis.settings
    recommended = (analysis.recommendation or {}).get("variant")
    members = {}
    for name, row in analysis.members.items():
        test = _scores(row.test)
        members[name] = {
            "state": row.state,
            "test_accuracy": test["accuracy"],
            "nll": test["nll"],
            "ece": test["ece"],
            "train_accuracy": row.train_accuracy,
            "train_images_per_s": row.train_images_per_s,
            "epoch_s": _mean(row.epoch_seconds),
            "inference_images_per_s": row.inference_images_per_s,
            "latency_p50_ms": row.latency_p50_ms,
        }
    recommended_variant = analysis.variants.get(recommended)
    return {
        "schema": SCHEMA_VERSION,
        "run_id": analysis.run_id,
        "profile": analysis.profile_name,
        "model": analysis.model_name,
        "created_at": settings.get("created_at"),
        "recorded_at": (recorded_at or dt.datetime.now()).isoformat(timespec="seconds"),
        "fingerprint": analysis.fingerprint,
        "executor": settings.get("executor"),
        "method": analysis.method,
        "ensemble": _scores(analysis.ensemble.test if analysis.ensemble else None),
        "best_member": analysis.best_member.to_json() if analysis.best_member else None,
        "gain_over_best": analysis.gain_over_best,
        "recommended": {"variant": recommended,
                        **_scores(recommended_variant.test if recommended_variant else None)},
        "members": members,
    }


def append(directory: Path, analysis: RunAnalysis, profile: str | None = None) -> Path:
    """Add the run to its profile and model's history file; returns the file."""
    line = entry(analysis)
    profile = profile or line["profile"]
    if not profile:
        raise ValueError("the analysis names no profile (no settings); pass profile=")
    path = path_for(directory, profile, analysis.model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(line, sort_keys=True, allow_nan=False) + "\n"
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            _drop_torn_line(handle)
            handle.seek(0, 2)
            handle.write(text.encode("utf-8"))
            handle.flush()
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return path


def _drop_torn_line(handle: Any) -> None:
    """Cut a last line left without its newline (a write torn by a full disk or a kill) off the file.

    The store is append-only and every line ends with a newline, so such a tail can only be a torn
    write; cut before the next append (under the file's lock), it is not complained about by every
    later report.
    """
    end = handle.seek(0, 2)
    if end == 0:
        return
    handle.seek(end - 1)
    if handle.read(1) == b"\n":
        return
    position = end
    while position > 0:
        step = min(BLOCK, position)
        position -= step
        handle.seek(position)
        found = handle.read(step).rfind(b"\n")
        if found >= 0:
            handle.truncate(position + found + 1)
            return
    handle.truncate(0)


TAIL_LINES = 1000
"""Lines ``load`` reads from the end of a history file, whatever the file holds: enough for
``DEFAULT_LIMIT`` runs even when most were finished several times (each finish appends a
line), and a bound on the time and memory a report takes with a history of any length."""
BLOCK = 1 << 16


def tail_lines(path: Path, count: int) -> tuple[list[str], bool]:
    """The last ``count`` lines of a file, read backwards in blocks; and whether earlier lines exist."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        position = handle.tell()
        blocks: list[bytes] = []
        newlines = 0
        while position > 0 and newlines <= count:  # each block read and counted once: linear in what is read
            step = min(BLOCK, position)
            position -= step
            handle.seek(position)
            blocks.append(handle.read(step))
            newlines += blocks[-1].count(b"\n")
    data = b"".join(reversed(blocks))
    lines = data.decode("utf-8", errors="replace").splitlines()
    more = position > 0 or len(lines) > count
    if position > 0 and lines:
        lines = lines[1:]  # the first may be the end of a longer line
    return lines[-count:], more


def load(directory: Path, profile: str, limit: int = DEFAULT_LIMIT, tail: int = TAIL_LINES,
         model: str = layout.DEFAULT_MODEL) -> History:
    """The profile and model's most recent ``limit`` runs, oldest first, from the file's last ``tail`` lines.

    Unreadable lines are skipped and summarised in one problem: how many, why and which file.
    """
    try:
        path = path_for(directory, profile, model)
    except ConfigError as err:
        return History(problems=[f"{err}; the trend is not shown"])
    history = History(path=path)
    try:
        lines, more = tail_lines(path, tail)
    except FileNotFoundError:
        return history
    except OSError as err:
        history.problems.append(f"cannot read the history file {path} ({err.strerror}); "
                                "the trend is not shown")
        return history
    by_run: dict[str, dict[str, Any]] = {}
    reasons: Counter[str] = Counter()
    first_bad = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        problem = _line_problem(line)
        if problem:
            reasons[problem] += 1
            first_bad = first_bad or number
            continue
        data = json.loads(line)
        by_run.pop(data["run_id"], None)  # a re-finished run moves to its latest place
        by_run[data["run_id"]] = data
    history.entries = list(by_run.values())[-limit:] if limit > 0 else []
    if reasons:
        history.problems.append(summarise(path, reasons, len(lines), more, first_bad))
    return history


def _line_problem(line: str) -> str | None:
    try:
        data = json.loads(line)
    except ValueError:
        return "are not valid JSON (torn writes or hand edits?)"
    if not isinstance(data, dict):
        return "are not JSON objects"
    if data.get("schema") != SCHEMA_VERSION:
        return f"have schema {str(data.get('schema'))[:20]}, not {SCHEMA_VERSION}"
    if not isinstance(data.get("run_id"), str) or not isinstance(data.get("members"), dict):
        return "lack a run_id or members"
    return _wrong_type(data)


TEXTS = ("profile", "model", "created_at", "recorded_at", "fingerprint", "executor", "method")
"""A line's fields that are a string (or null)."""
SCORES = ("accuracy", "nll", "ece")
"""The ensemble's and the recommended variant's figures: each a finite number (or null)."""
MEMBER_FIGURES = ("test_accuracy", "nll", "ece", "train_accuracy", "train_images_per_s", "epoch_s",
                  "inference_images_per_s", "latency_p50_ms")
"""A member's figures: each a finite number (or null)."""


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and math.isfinite(value))


def _wrong_type(data: dict[str, Any]) -> str | None:
    """Why a line of valid JSON holds a value of the wrong type where the report or ``kbench history``
    reads one (``"members": {"tensorflow": "abc"}``), or None. The phrase names the field, not the value."""
    for key in TEXTS:
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"hold a {key} that is not a string"
    if not _number(data.get("gain_over_best")):
        return "hold a gain_over_best that is not a number"
    for key in ("ensemble", "recommended", "best_member"):
        part = data.get(key)
        if part is not None and not isinstance(part, dict):
            return f"hold {key} that is not an object"
        if key != "best_member" and not all(_number((part or {}).get(score)) for score in SCORES):
            return f"hold {key} figures that are not numbers"
    for member in data["members"].values():
        if not isinstance(member, dict):
            return "hold a member that is not an object"
        if not all(_number(member.get(figure)) for figure in MEMBER_FIGURES):
            return "hold member figures that are not numbers"
        if member.get("state") is not None and not isinstance(member["state"], str):
            return "hold a member state that is not a string"
    return None


def summarise(path: Path, reasons: Counter[str], read: int, more: bool, first: int | None) -> str:
    """All skipped lines of a history file in one sentence, however many there are."""
    count = sum(reasons.values())
    where = f"the last {read:,} lines" if more else f"the {read:,} lines"
    why = "; ".join(f"{n:,} {reason}" for reason, n in reasons.most_common(5))
    if len(reasons) > 5:
        why += f"; {sum(n for _, n in reasons.most_common()[5:]):,} for other reasons"
    first_text = f", the first at line {first} of those read" if first and not more else ""
    return (f"skipped {count:,} of {where} of {path} that cannot be read ({why}{first_text}); "
            "move that file aside to start a fresh history")
