"""``harness.history``: one JSON line per finished run, robust to lines it cannot read."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness import history
from harness.run_end import reanalyse
from harness.scoring.run_analysis import RunAnalysis
from tests.run_fixtures import RunSpec, write_run


@pytest.fixture(scope="module")
def analysis(tmp_path_factory) -> RunAnalysis:
    return reanalyse(write_run(tmp_path_factory.mktemp("run"), RunSpec(failed={"jax": "boom"})))


def renamed(analysis: RunAnalysis, run_id: str) -> RunAnalysis:
    return dataclasses.replace(analysis, run_id=run_id)


def test_an_entry_summarises_accuracy_calibration_and_speed(analysis: RunAnalysis) -> None:
    entry = history.entry(analysis)
    assert entry["run_id"] == "synthetic1" and entry["profile"] == "smoke" and entry["schema"] == 1
    assert entry["ensemble"]["accuracy"] == analysis.ensemble.test.accuracy
    assert entry["recommended"]["variant"] == analysis.recommendation["variant"]
    torch = entry["members"]["torch"]
    assert torch["test_accuracy"] == analysis.members["torch"].test.accuracy
    assert torch["train_images_per_s"] == analysis.members["torch"].train_images_per_s
    assert torch["epoch_s"] == pytest.approx(sum(analysis.members["torch"].epoch_seconds) / 3)
    assert entry["members"]["jax"]["state"] == "failed" and entry["members"]["jax"]["test_accuracy"] is None
    assert json.loads(json.dumps(entry, allow_nan=False)) == entry


def test_runs_are_kept_per_profile_oldest_first(tmp_path: Path, analysis: RunAnalysis) -> None:
    for run_id in ("a", "b", "c"):
        path = history.append(tmp_path, renamed(analysis, run_id))
    assert path == tmp_path / "smoke.jsonl"
    loaded = history.load(tmp_path, "smoke")
    assert [e["run_id"] for e in loaded] == ["a", "b", "c"] and loaded.problems == []
    assert len(history.load(tmp_path, "smoke", limit=2)) == 2
    assert [e["run_id"] for e in history.load(tmp_path, "smoke", limit=2)] == ["b", "c"]
    assert len(history.load(tmp_path, "default")) == 0


def test_a_finished_again_run_replaces_its_earlier_line(tmp_path: Path, analysis: RunAnalysis) -> None:
    history.append(tmp_path, renamed(analysis, "a"))
    history.append(tmp_path, renamed(analysis, "b"))
    again = renamed(analysis, "a")
    again.gain_over_best = 0.5
    history.append(tmp_path, again)
    loaded = history.load(tmp_path, "smoke").entries
    assert [e["run_id"] for e in loaded] == ["b", "a"] and loaded[-1]["gain_over_best"] == 0.5


def test_unreadable_lines_are_skipped_and_named(tmp_path: Path, analysis: RunAnalysis) -> None:
    history.append(tmp_path, renamed(analysis, "a"))
    path = tmp_path / "smoke.jsonl"
    with open(path, "a") as handle:
        handle.write("{torn\n")
        handle.write("[1, 2]\n")
        handle.write(json.dumps({"schema": 99, "run_id": "x", "members": {}}) + "\n")
        handle.write(json.dumps({"schema": 1, "members": {}}) + "\n")
        handle.write("\n")
    history.append(tmp_path, renamed(analysis, "b"))
    loaded = history.load(tmp_path, "smoke")
    assert [e["run_id"] for e in loaded] == ["a", "b"]
    assert len(loaded.problems) == 4
    assert loaded.problems[0] == f"{path} line 2 is not valid JSON (a torn write or a hand edit?); skipped it"
    assert "line 3 is not a JSON object" in loaded.problems[1]
    assert "line 4 has schema 99, not 1" in loaded.problems[2]
    assert "line 5 lacks a run_id or members" in loaded.problems[3]


def test_an_append_after_a_torn_write_starts_a_new_line(tmp_path: Path, analysis: RunAnalysis) -> None:
    path = tmp_path / "smoke.jsonl"
    path.write_text('{"schema": 1, "run_id": "torn", "mem')
    history.append(tmp_path, renamed(analysis, "a"))
    loaded = history.load(tmp_path, "smoke")
    assert [e["run_id"] for e in loaded] == ["a"] and len(loaded.problems) == 1


def test_an_analysis_without_a_profile_needs_one_named(tmp_path: Path, analysis: RunAnalysis) -> None:
    bare = dataclasses.replace(analysis, settings={})
    with pytest.raises(ValueError, match="names no profile"):
        history.append(tmp_path, bare)
    assert history.append(tmp_path, bare, profile="custom") == tmp_path / "custom.jsonl"


def test_an_unreadable_store_is_a_problem_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "smoke.jsonl").mkdir()
    loaded = history.load(tmp_path, "smoke")
    assert loaded.entries == [] and "cannot read the history file" in loaded.problems[0]
