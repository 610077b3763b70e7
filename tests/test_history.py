"""``harness.history``: one JSON line per finished run, robust to lines it cannot read."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness import history
from harness.run_end import reanalyse
from harness.scoring.record import RunAnalysis
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


def test_unreadable_lines_are_skipped_and_summarised_in_one_line(tmp_path: Path, analysis: RunAnalysis) -> None:
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
    [problem] = loaded.problems
    assert problem.startswith(f"skipped 4 of the 7 lines of {path} that cannot be read (")
    for why in ("1 are not valid JSON", "1 are not JSON objects", "1 have schema 99, not 1",
                "1 lack a run_id or members", "the first at line 2"):
        assert why in problem
    assert problem.endswith("move that file aside to start a fresh history")


def write_lines(path: Path, line: str, count: int) -> None:
    with open(path, "a") as handle:
        handle.write(line * count)


def test_a_history_after_a_schema_change_is_one_line_however_long(tmp_path: Path, analysis: RunAnalysis) -> None:
    """Before: one line per unreadable line, in the terminal and the report (10,000 lines: 764 KB)."""
    path = tmp_path / "smoke.jsonl"
    write_lines(path, json.dumps(dict(history.entry(analysis), schema=0)) + "\n", 5000)
    history.append(tmp_path, renamed(analysis, "after"))
    loaded = history.load(tmp_path, "smoke", tail=100)
    assert [e["run_id"] for e in loaded] == ["after"]
    assert loaded.problems == [(f"skipped 99 of the last 100 lines of {path} that cannot be read (99 have "
                                "schema 0, not 1); move that file aside to start a fresh history")]


def test_only_the_end_of_the_history_is_read_and_the_latest_runs_kept(tmp_path: Path, analysis: RunAnalysis) -> None:
    path = tmp_path / "smoke.jsonl"
    entry = history.entry(analysis)
    with open(path, "w") as handle:
        handle.writelines(json.dumps(dict(entry, run_id=f"r{i}")) + "\n" for i in range(300))
    loaded = history.load(tmp_path, "smoke", limit=5, tail=50)
    assert [e["run_id"] for e in loaded] == [f"r{i}" for i in range(295, 300)] and loaded.problems == []


@pytest.mark.parametrize("count", [0, 1, 2, 3, 49, 50, 51, 52])
def test_tail_lines_returns_exactly_the_last_lines(tmp_path: Path, count: int) -> None:
    path = tmp_path / "f"
    path.write_text("".join(f"{'x' * (i * 7919 % 3000)}{i}\n" for i in range(count)))
    lines, more = history.tail_lines(path, 50)
    assert [line[-len(str(i)):] for line, i in zip(lines, range(max(0, count - 50), count), strict=True)] == \
        [str(i) for i in range(max(0, count - 50), count)]
    assert more == (count > 50)


def test_an_append_after_a_torn_write_cuts_the_torn_line(tmp_path: Path, analysis: RunAnalysis) -> None:
    """Before: a disk that filled mid-write left a torn line that every later report complained about."""
    path = tmp_path / "smoke.jsonl"
    history.append(tmp_path, renamed(analysis, "a"))
    with open(path, "a") as handle:
        handle.write('{"schema": 1, "run_id": "torn", "mem')
    assert len(history.load(tmp_path, "smoke").problems) == 1, "read before the next append: said"
    history.append(tmp_path, renamed(analysis, "b"))
    loaded = history.load(tmp_path, "smoke")
    assert [e["run_id"] for e in loaded] == ["a", "b"] and loaded.problems == []
    path.write_text('{"schema": 1, "run_id": "torn", "mem')  # a file of nothing but a torn line
    history.append(tmp_path, renamed(analysis, "c"))
    assert [e["run_id"] for e in history.load(tmp_path, "smoke")] == ["c"]


def test_an_analysis_without_a_profile_needs_one_named(tmp_path: Path, analysis: RunAnalysis) -> None:
    bare = dataclasses.replace(analysis, settings={})
    with pytest.raises(ValueError, match="names no profile"):
        history.append(tmp_path, bare)
    assert history.append(tmp_path, bare, profile="custom") == tmp_path / "custom.jsonl"


def test_an_unreadable_store_is_a_problem_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "smoke.jsonl").mkdir()
    loaded = history.load(tmp_path, "smoke")
    assert loaded.entries == [] and "cannot read the history file" in loaded.problems[0]


def test_the_report_stays_small_whatever_the_history_holds(tmp_path: Path, analysis: dict, capsys) -> None:
    """Before: every unreadable line was copied into the report and the terminal (100,000: 9.6 MB of HTML)."""
    from harness import cli

    run_dir = write_run(tmp_path / "shared", RunSpec())
    store = history.path_for(history.default_dir(tmp_path / "shared"), "smoke")
    store.parent.mkdir(parents=True)
    write_lines(store, json.dumps(dict(history.entry(analysis), schema=0)) + "\n", 20_000)
    assert cli.main(["report", str(run_dir), "--reports-dir", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("history: skipped") == 1 and len(printed.splitlines()) == 5  # and 2 reports + 2 copies
    markdown = (run_dir / "report.md").read_text()
    assert markdown.count("that cannot be read") == 1 and len(markdown) < 50_000
    assert (run_dir / "report.html").stat().st_size < 600_000
