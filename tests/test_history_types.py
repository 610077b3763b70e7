"""History lines of valid JSON with values of the wrong type: skipped with a line, never a traceback.

A synthetic finished run (``tests.run_fixtures``) and its profile's history
file, edited by hand. Issue 30, break 3.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import cli, history
from harness.run_end import reanalyse
from tests.run_fixtures import RunSpec, write_run

pytestmark = pytest.mark.usefixtures("keras_download_cached")


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run whose profile's history holds one sound line and one with a member of the wrong type."""
    run_dir = write_run(tmp_path / "shared", RunSpec(backends=("tensorflow", "jax")))
    folder = history.default_dir(tmp_path / "shared")
    sound = history.entry(reanalyse(run_dir))
    history.append(folder, reanalyse(run_dir))
    with open(folder / "smoke.jsonl", "a") as handle:
        handle.write(json.dumps(dict(sound, run_id="edited", members={"tensorflow": "abc"})) + "\n")
    return run_dir


@pytest.mark.parametrize("change, why", [
    ({"members": {"tensorflow": "abc"}}, "hold a member that is not an object"),
    ({"members": {"tensorflow": {"test_accuracy": "abc"}}}, "hold member figures that are not numbers"),
    ({"ensemble": {"accuracy": [1]}}, "hold ensemble figures that are not numbers"),
    ({"ensemble": "abc"}, "hold ensemble that is not an object"),
    ({"recorded_at": 5}, "hold a recorded_at that is not a string"),
    ({"gain_over_best": "x"}, "hold a gain_over_best that is not a number"),
    ({"members": {"jax": {"state": 1}}}, "hold a member state that is not a string"),
])
def test_a_line_of_valid_json_with_a_value_of_the_wrong_type_is_skipped_and_said(tmp_path, change, why):
    line = {"schema": history.SCHEMA_VERSION, "run_id": "r1", "members": {}, **change}
    (tmp_path / "smoke.jsonl").write_text(json.dumps(line) + "\n")
    loaded = history.load(tmp_path, "smoke")
    assert loaded.entries == []
    [problem] = loaded.problems
    assert f"(1 {why}" in problem and problem.endswith("move that file aside to start a fresh history")


def test_kbench_history_skips_the_line_with_one_line(run_dir, capsys):
    """Before: `kbench history` printed an AttributeError traceback."""
    assert cli.main(["--shared-dir", str(run_dir.parent.parent), "history"]) == 0
    out = capsys.readouterr().out
    assert "  (skipped: skipped 1 of the 2 lines of" in out and "(1 hold a member that is not an object" in out
    assert "Traceback" not in out and "synthetic1" in out


def test_kbench_report_writes_the_report_and_says_what_it_skipped(run_dir, capsys):
    """Before: `kbench report` exited 1 with "could not write the report (AttributeError ...)"."""
    assert cli.main(["report", str(run_dir), "--baselines", "", "--reports-dir", str(run_dir.parent / "out")]) == 0
    out = capsys.readouterr().out
    assert "history: skipped 1 of the " in out and "(1 hold a member that is not an object" in out and f"report: {run_dir / 'report.html'}" in out
