"""``kbench``, the command line: every subcommand on real run folders, as a user types it.

The runs are synthetic (``tests/run_fixtures.py``) but laid out exactly as a
session leaves them, so ``report`` re-analyses them with the real code.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli, history
from harness.compare import compare, describe_change
from harness.run_end import reanalyse
from harness.workload import layout
from tests.run_fixtures import RunSpec, write_run


def kbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``kbench ARGS`` in a fresh interpreter, as the installed script runs it."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120, check=False)


def finished_run(shared: Path, run_id: str, **spec) -> Path:
    """A run folder with the ensemble.json its session would have written."""
    folder = write_run(shared, RunSpec(run_id=run_id, **spec))
    (folder / layout.ENSEMBLE_JSON).write_text(json.dumps(reanalyse(folder).to_json()))
    return folder


@pytest.mark.parametrize("command", [[], ["report"], ["history"], ["compare"], ["cleanup"]])
def test_every_subcommand_has_help(command):
    result = kbench(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: kbench" in result.stdout
    if not command:
        for name in ("report", "history", "compare", "cleanup"):
            assert name in result.stdout


def test_no_subcommand_is_a_usage_error():
    result = kbench()
    assert result.returncode == 2
    assert "required: COMMAND" in result.stderr


def test_report_rerenders_a_run_given_by_id(tmp_path):
    shared = tmp_path / "shared"
    folder = finished_run(shared, "r1")
    result = kbench("--shared-dir", str(shared), "report", "r1", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert f"report: {folder / 'report.html'}" in result.stdout
    assert (tmp_path / "out" / "r1" / "report.md").read_text().startswith("#")


def test_history_lists_every_finished_run_of_a_profile(tmp_path):
    shared = tmp_path / "shared"
    for run_id in ("h1", "h2"):
        history.append(history.default_dir(shared), cli.read_analysis(finished_run(shared, run_id)))
    result = kbench("--shared-dir", str(shared), "history")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("profile smoke, model seed: 2 run(s)")
    assert [line.split()[1] for line in lines[1:]] == ["h1", "h2"]
    assert "tensorflow" in lines[1] and "ensemble (seed)" in lines[1]


def test_history_without_any_run_says_where_it_looked(tmp_path):
    result = kbench("--shared-dir", str(tmp_path), "history")
    assert result.returncode == 1
    assert result.stderr.startswith("kbench: no run history in ")
    assert "Traceback" not in result.stderr


def test_compare_shows_each_figure_of_both_runs_with_its_change(tmp_path):
    shared = tmp_path / "shared"
    finished_run(shared, "a1")
    finished_run(shared, "b1", noise={"jax": 3.0})  # jax much less accurate in run B
    result = kbench("--shared-dir", str(shared), "compare", "a1", "b1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "comparing run a1 (A) with run b1 (B)" in out
    jax_accuracy = next(line for line in out.splitlines() if line.startswith("jax") and "test accuracy" in line)
    assert "points (worse)" in jax_accuracy
    assert any(line.startswith("ensemble (seed / seed)") for line in out.splitlines())
    assert "no spread is measured" in out


def test_compare_of_a_missing_run_is_one_line_naming_the_fix(tmp_path):
    result = kbench("--shared-dir", str(tmp_path), "compare", "nope", "nada")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "give the run's folder or its id" in result.stderr


def test_cleanup_without_a_cluster_is_one_line(tmp_path):
    result = kbench("cleanup", "--run-id", "r1", "--k8s-kubeconfig", str(tmp_path / "missing"))
    assert result.returncode == 1
    assert result.stderr.startswith("kbench: ") and "Traceback" not in result.stderr


@pytest.mark.parametrize("before, after, kind, higher, expected", [
    (100.0, 112.0, "ratio", True, "+12.0% (faster)"),
    (100.0, 80.0, "ratio", True, "-20.0% (slower)"),
    (10.0, 12.0, "ratio", False, "+20.0% (slower)"),  # epoch time up: slower
    (0.40, 0.43, "points", True, "+3.00 points (better)"),
    (0.05, 0.07, "points", False, "+2.00 points (worse)"),  # ECE up: worse
    (1.50, 1.40, "difference", False, "-0.1000 (better)"),
    (0.4, 0.4, "points", True, "unchanged"),
    (None, 0.4, "points", True, "n/a (only in the second run)"),
])
def test_changes_are_described_with_their_direction_and_size(before, after, kind, higher, expected):
    assert describe_change(before, after, kind, higher) == expected


def test_compare_lists_a_backend_that_only_one_run_has():
    a = {"members": {"jax": {"test_accuracy": 0.4}}, "ensemble": {}, "recommended": {}}
    b = {"members": {"jax": {"test_accuracy": 0.4}, "torch": {"test_accuracy": 0.3}},
         "ensemble": {}, "recommended": {}}
    rows = {(r.subject, r.figure): r.change for r in compare(a, b)}
    assert rows[("torch", "test accuracy")] == "n/a (only in the second run)"
    assert rows[("jax", "test accuracy")] == "unchanged"
