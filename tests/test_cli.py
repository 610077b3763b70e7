"""``kbench``, the command line: every subcommand on real run folders, as a user types it.

The runs are synthetic (``tests/run_fixtures.py``) but laid out exactly as a
session leaves them, so ``report`` re-analyses them with the real code.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli, compare_runs, history
from harness.compare_runs import Side, compare, describe_change
from harness.run_end import reanalyse
from harness.run_store import RunStore
from harness.workload import layout
from tests.run_fixtures import RunSpec, write_run
from tests.test_speed_gate import benchmark_document
from tests.test_speed_gate import run as speed_run


def kbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``kbench ARGS`` in a fresh interpreter, as the installed script runs it."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120, check=False)


def finished_run(shared: Path, run_id: str, **spec) -> Path:
    """A run folder with the ensemble.json its session would have written."""
    folder = write_run(shared, RunSpec(run_id=run_id, **spec))
    (folder / layout.ENSEMBLE_JSON).write_text(json.dumps(reanalyse(folder).to_json()))
    return folder


@pytest.mark.parametrize("command", [[], ["report"], ["history"], ["compare"], ["gate"], ["cleanup"]])
def test_every_subcommand_has_help(command):
    result = kbench(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: kbench" in result.stdout
    if not command:
        for name in ("report", "history", "compare", "gate", "cleanup"):
            assert name in result.stdout


def test_no_subcommand_is_a_usage_error():
    result = kbench()
    assert result.returncode == 2
    assert "required: COMMAND" in result.stderr


def test_report_rerenders_a_run_given_by_id(tmp_path):
    shared = tmp_path / "shared"
    folder = finished_run(shared, "r1")
    result = kbench("--shared-dir", str(shared), "report", "r1", "--reports-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert f"report: {folder / 'report.html'}" in result.stdout
    assert (tmp_path / "out" / "r1" / "report.md").read_text().startswith("#")


def test_history_lists_every_finished_run_of_a_profile(tmp_path):
    shared = tmp_path / "shared"
    for run_id in ("h1", "h2"):
        history.append(history.default_dir(shared), RunStore.at(finished_run(shared, run_id)).read_analysis())
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
    assert re.search(r"\d+\.\d+% \(\d+\.\d-\d+\.\d\)", jax_accuracy)  # each side with its Wilson interval
    assert any(line.startswith("jax") and "training img/s in job, shared" in line for line in out.splitlines())
    assert "(faster)" not in out and "(slower)" not in out  # the synthetic speeds are alike within noise
    assert any(line.startswith("ensemble (seed / seed)") for line in out.splitlines())
    assert "a change is called only where the intervals separate" in out


def test_compare_of_a_missing_run_is_one_line_naming_the_fix(tmp_path):
    result = kbench("--shared-dir", str(tmp_path), "compare", "nope", "nada")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "give the run's folder or its id" in result.stderr


def test_cleanup_without_a_cluster_is_one_line(tmp_path):
    result = kbench("cleanup", "--run-id", "r1", "--k8s-kubeconfig", str(tmp_path / "missing"))
    assert result.returncode == 1
    assert result.stderr.startswith("kbench: ") and "Traceback" not in result.stderr


def benchmark_json(path: Path, seed: int, **speed) -> Path:
    """A pytest-benchmark JSON file with test_speed cases of every backend (see tests/test_speed_gate.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(benchmark_document(speed_run(seed, **speed))))
    return path


def test_gate_fails_on_a_backend_surely_slower_and_names_it(tmp_path):
    base = benchmark_json(tmp_path / "base.json", 1)
    candidate = benchmark_json(tmp_path / "candidate.json", 2, scale={"jax": 1.25})
    result = kbench("gate", str(base), str(candidate))
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"gate: {candidate} against {base} (threshold 10%)"
    assert lines[1].startswith("jax: 1.2") and lines[1].endswith("threshold 10%): REGRESSION")
    assert "unchanged" in lines[2] and "unchanged" in lines[3]
    assert lines[4].startswith("REGRESSION: 1 slower, 2 unchanged; raw step times: the same machine")


def test_gate_judges_the_fastest_of_several_processes_per_side(tmp_path):
    base = benchmark_json(tmp_path / "base.json", 1)
    slow = benchmark_json(tmp_path / "candidate.json", 2, scale={"jax": 1.25})  # a slow draw
    assert kbench("gate", str(base), str(slow)).returncode == 1
    result = kbench("gate", str(base), str(slow), "--also-candidate", str(benchmark_json(tmp_path / "c2.json", 3)),
                    "--also-base", str(benchmark_json(tmp_path / "b2.json", 4)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("gate: the fastest of 2 candidate process(es)")
    store = kbench("gate", str(tmp_path), str(slow), "--also-base", str(base))
    assert store.returncode == 1 and "--also-base needs BASE to be a JSON file" in store.stderr


def test_gate_passes_when_nothing_changed_beyond_noise_or_the_threshold(tmp_path):
    base = benchmark_json(tmp_path / "base.json", 1)
    candidate = benchmark_json(tmp_path / "candidate.json", 2, scale={"torch": 1.25})
    assert kbench("gate", str(base), str(candidate), "--threshold", "50%").returncode == 0
    result = kbench("gate", str(base), str(benchmark_json(tmp_path / "same.json", 3)), "--threshold", "0.1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("no regression: 3 unchanged")


def test_gate_normalises_by_the_ceiling_across_machines_and_says_why(tmp_path):
    base = benchmark_json(tmp_path / "base.json", 1, ceiling=200.0, machine="fast-box")
    candidate = benchmark_json(tmp_path / "candidate.json", 2, ceiling=100.0, machine="slow-box",
                               scale={"tensorflow": 2.0, "jax": 2.0, "torch": 2.0})
    result = kbench("gate", str(base), str(candidate))
    assert result.returncode == 0, result.stdout
    assert "ceiling-normalised step times: different machines (fast-box vs slow-box" in result.stdout


def test_gate_against_a_store_takes_its_latest_file_other_than_the_candidate(tmp_path):
    store = tmp_path / ".benchmarks"
    benchmark_json(store / "Linux-CPython-3.11-64bit" / "0001_old.json", 1, scale={"jax": 2.0})
    latest = benchmark_json(store / "Linux-CPython-3.11-64bit" / "0002_new.json", 2, scale={"jax": 1.25})
    candidate = benchmark_json(store / "Linux-CPython-3.11-64bit" / "0003_candidate.json", 3, scale={"jax": 1.25})
    result = kbench("gate", str(store), str(candidate))
    assert result.returncode == 0, result.stdout
    assert f"against {latest}" in result.stdout.splitlines()[0]


def test_gate_with_an_empty_store_has_nothing_to_compare_and_passes(tmp_path):
    candidate = benchmark_json(tmp_path / "candidate.json", 1)
    (tmp_path / "store").mkdir()
    result = kbench("gate", str(tmp_path / "store"), str(candidate))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("nothing to compare against: ")


@pytest.mark.parametrize("bad, message", [
    (None, "no file "),
    ("{not json", "is not JSON"),
    ('{"machine_info": {}}', "is not a pytest-benchmark JSON document"),
    ('{"benchmarks": []}', "no test_speed cases with speed data in "),
])
def test_gate_on_bad_input_is_one_line_naming_the_fix(tmp_path, bad, message):
    base = benchmark_json(tmp_path / "base.json", 1)
    candidate = tmp_path / "candidate.json"
    if bad is not None:
        candidate.write_text(bad)
    result = kbench("gate", str(base), str(candidate))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("kbench: ") and message in result.stderr
    assert "Traceback" not in result.stderr


def test_gate_without_speed_cases_says_which_version_to_run(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"benchmarks": [], "version": "5.3.1"}))
    result = kbench("gate", str(old), str(benchmark_json(tmp_path / "candidate.json", 1)))
    assert result.stderr == (f"kbench: no test_speed cases with speed data in {old}; run pytest benchmarks/ with "
                             "--benchmark-json from a version that has the speed phase\n")


@pytest.mark.parametrize("value, expected", [("10%", 0.10), ("0.1", 0.1), ("150%", 1.5), ("2.5%", 0.025)])
def test_gate_thresholds_are_a_percentage_or_a_fraction(value, expected):
    assert cli.threshold(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["10", "0", "-5%", "ten", "nan"])
def test_gate_rejects_a_threshold_that_is_not_one(value, tmp_path):
    result = kbench("gate", "a.json", "b.json", "--threshold", value)
    assert result.returncode == 2 and "--threshold" in result.stderr


def test_gate_can_watch_the_singlestream_p90_of_the_serve_cases(tmp_path):
    from tests.test_speed_gate import serve_document

    base, candidate = tmp_path / "base.json", tmp_path / "candidate.json"
    base.write_text(json.dumps(serve_document({"jax": 1.4, "torch": 3.0}, 1)))
    candidate.write_text(json.dumps(serve_document({"jax": 1.4 * 1.3, "torch": 3.0}, 2)))
    result = kbench("gate", str(base), str(candidate), "--watch", "p90")
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    assert any(line.startswith("jax SingleStream p90: 1.") and line.endswith("REGRESSION") for line in lines)
    assert any(line.startswith("torch SingleStream p90: ") and "unchanged" in line for line in lines)
    steps_only = kbench("gate", str(base), str(candidate))
    assert steps_only.returncode == 1 and "no test_speed cases with speed data" in steps_only.stderr


@pytest.mark.parametrize("value", ["", "p99", "steps,latency"])
def test_gate_rejects_a_watch_it_does_not_know(value):
    result = kbench("gate", "a.json", "b.json", "--watch", value)
    assert result.returncode == 2 and "--watch" in result.stderr and "choose from steps, p90" in result.stderr


@pytest.mark.parametrize("before, after, kind, higher, expected", [
    (Side(100.0, (98, 102)), Side(112.0, (110, 114)), "speed", True, "+12.0% (faster)"),
    (Side(100.0, (98, 102)), Side(80.0, (78, 82)), "speed", True, "-20.0% (slower)"),
    (Side(100.0, (90, 110)), Side(105.0, (95, 115)), "speed", True, "+5.0% (within noise: the 95% intervals overlap)"),
    (Side(100.0, (98, 102)), Side(50.0, (49, 51), contended=True), "speed", True,
     "-50.0% (not compared: B timed while other processes used the machine)"),
    (Side(0.40, (0.36, 0.44)), Side(0.52, (0.48, 0.56)), "accuracy", True, "+12.00 points (better)"),
    (Side(0.40, (0.36, 0.44)), Side(0.388, (0.35, 0.43)), "accuracy", True,
     "-1.20 points (within noise: the 95% intervals overlap)"),
    (Side(0.05), Side(0.07), "points", None, "+2.00 points (higher; no interval to judge it by)"),
    (Side(1.50), Side(1.40), "difference", None, "-0.1000 (lower; no interval to judge it by)"),
    (Side(173.5), Side(264.6), "shared", None,
     "+52.5% (measured in the jobs, beside other jobs: not a speed comparison)"),
    (Side(2.0, (1.9, 2.1)), Side(1.5, (1.4, 1.6)), "latency", False, "-25.0% (faster)"),
    (Side(2.0, (1.9, 2.1)), Side(2.05, (1.95, 2.2)), "latency", False,
     "+2.5% (within noise: the 95% intervals overlap)"),
    (Side(900.0, (900, 1300)), Side(300.0, (300, 360), audit_failed=True), "speed", True,
     "-66.7% (not compared: B served answers that differ from its predict job's)"),
    (Side(148.1, (148.1, 169.3)), Side(None, missing="no offered rate met the bound"), "speed", True,
     "n/a (B: no offered rate met the bound)"),
    (Side(0.4), Side(0.4), "accuracy", True, "unchanged"),
    (Side(None), Side(0.4), "accuracy", True, "n/a (only in the second run)"),
])
def test_a_change_is_called_only_where_the_intervals_separate(before, after, kind, higher, expected):
    assert describe_change(before, after, kind, higher) == expected


def test_compare_shows_serving_with_intervals_and_never_judges_a_contended_or_wrong_side(tmp_path):
    a = reanalyse(write_run(tmp_path / "a", RunSpec(run_id="a1", backends=("jax", "torch", "tensorflow"))))
    b = reanalyse(write_run(tmp_path / "b", RunSpec(run_id="b1", backends=("jax", "torch", "tensorflow"),
                                                    serve_outside_load={"jax": 0.7}, serve_wrong=("torch",),
                                                    serve_ms={"jax": 3.5, "torch": 5.0, "tensorflow": 6.0})))
    rows = {(r.subject, r.figure): r for r in compare(a, b)}
    p90 = rows[("jax", "SingleStream p90 ms, alone")]
    assert p90.after.contended and p90.before.interval and p90.before.interval[0] <= p90.before.value
    assert p90.change.endswith("(not compared: B timed while other processes used the machine)")
    assert rows[("torch", "Offline img/s at its best batch, alone")].change.endswith(
        "(not compared: B served answers that differ from its predict job's)")
    assert rows[("tensorflow", "SingleStream p90 ms, alone")].change.endswith("(slower)")  # 2 ms -> 6 ms
    server = rows[("tensorflow", "Server peak queries/s (bracket), alone")]
    assert server.before.value is not None and server.before.interval[0] == server.before.value
    notes = compare_runs.shared_notes(a, b)
    assert notes == [("run B (b1): The machine was shared while jax was served: other processes used up to 0.70 of "
                     "a core; those serving figures are marked contended and not ranked")]


def test_compare_lists_a_backend_that_only_one_run_has(tmp_path):
    a = reanalyse(write_run(tmp_path / "a", RunSpec(run_id="a1", backends=("jax",))))
    b = reanalyse(write_run(tmp_path / "b", RunSpec(run_id="b1", backends=("jax", "torch"))))
    rows = {(r.subject, r.figure): r.change for r in compare(a, b)}
    assert rows[("torch", "test accuracy")] == "n/a (only in the second run)"
    assert rows[("jax", "test accuracy")] == "unchanged"
