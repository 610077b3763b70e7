"""A run of something new has no baseline yet: its accuracy checks skip with one line, unless required.

Each test runs pytest in a separate process (pytester) with the plugin's real
options on a custom ``.json`` profile. The jobs have already finished: a
synthetic run folder in the real layout stands in for three trained backends
(a conftest hands the session its analysis), so the cases, the verdicts and
the end of the run (history, report) are the real ones, in seconds.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.workload import layout
from tests.run_fixtures import RunSpec, write_run

pytest_plugins = ["pytester"]

BACKENDS = ("tensorflow", "jax", "torch")
CASES = '''
def test_predict(backend_name, kbench):
    kbench.check("predict", backend_name)


def test_ensemble(kbench):
    kbench.check("ensemble")
'''
FINISHED_JOBS = '''
import pytest

from harness.pytest_plugin import session_key
from harness.run_end import reanalyse


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    run = session.config.stash[session_key].runs[0]  # the jobs of this run have finished already
    run.analysis = reanalyse(run.store.path)
    run.started = True
    run.result = lambda backend, phase: run.store.read_status(backend, phase)
'''
NO_BASELINE_LINE = "no baseline for profile mine (no file {path}); accuracy is not checked: record one with " \
                   "--record-baseline from a run you trust"


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)  # the cases choose --require-baseline themselves
    run_dir = write_run(tmp_path / "shared", RunSpec(run_id="mine-1", profile="mine", backends=BACKENDS))
    profile = json.loads((run_dir / layout.RUN_JSON).read_text())["profile"]
    (tmp_path / "mine.json").write_text(json.dumps(profile))
    (tmp_path / "baselines").mkdir()
    pytester.makepyfile(test_cases=CASES)
    pytester.makeconftest(FINISHED_JOBS)
    return {"pytester": pytester, "root": tmp_path, "run_dir": run_dir, "baselines": tmp_path / "baselines"}


def run(project: dict, *extra: str) -> pytest.RunResult:
    root = project["root"]
    return project["pytester"].runpytest_subprocess(
        "-p", "no:cacheprovider", "-rsf", "--backend", ",".join(BACKENDS), "--profile", str(root / "mine.json"),
        "--shared-dir", str(root / "shared"), "--work-dir", str(root / "work"), "--run-id", "mine-1",
        "--baselines", str(project["baselines"]), *extra, timeout=300)


def report(project: dict) -> str:
    return (project["run_dir"] / layout.REPORT_MD).read_text()


def baseline_column(markdown: str) -> dict[str, str]:
    """The results table's last cell (the baseline verdict) per backend."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Backend | State |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return {cells[0].rstrip(" ★"): cells[-1] for cells in rows}


def test_a_profile_without_a_baseline_skips_its_checks_with_one_line_and_exits_0(project) -> None:
    result = run(project)
    result.assert_outcomes(skipped=len(BACKENDS) + 1)
    assert result.ret == 0
    output = result.stdout.str() + result.stderr.str()
    line = NO_BASELINE_LINE.format(path=project["baselines"] / "mine.json")
    said = [text for text in output.splitlines() if "no baseline for profile" in text]
    assert len(said) == 1 and said[0].startswith(f"SKIPPED [{len(BACKENDS) + 1}] ") and said[0].endswith(line)
    assert "During handling" not in output and "Traceback" not in output
    markdown = report(project)
    assert f"**No baseline:** {line}" in markdown.replace("\\", "")
    assert baseline_column(markdown) == dict.fromkeys(BACKENDS, "no baseline")


def test_require_baseline_turns_a_missing_one_into_one_failure_line_each(project) -> None:
    result = run(project, "--require-baseline")
    result.assert_outcomes(failed=len(BACKENDS) + 1)
    assert result.ret == 1
    output = result.stdout.str() + result.stderr.str()
    line = NO_BASELINE_LINE.format(path=project["baselines"] / "mine.json") + " (--require-baseline)"
    sections = [text for text in output.splitlines() if text == line]
    assert len(sections) == len(BACKENDS) + 1, "each failure's section is the one line"
    failures = [text for text in output.splitlines() if text.startswith("FAILED ")]
    assert len(failures) == len(BACKENDS) + 1 and all(" - Failed: no baseline for" in text for text in failures)
    assert "During handling" not in output and "Traceback" not in output and "AssertionError" not in output
    assert baseline_column(report(project)) == dict.fromkeys(BACKENDS, "no baseline")


@pytest.mark.parametrize("require", [False, True])
def test_a_backend_the_baseline_lacks_is_unchecked_alone(project, require: bool) -> None:
    entry = {"test_accuracy": 0.3, "tolerance": 0.3}
    path = project["baselines"] / "mine.json"
    path.write_text(json.dumps({"schema": 1, "members": {"tensorflow": entry, "jax": entry},
                                "ensemble": dict(entry, method="seed", max_gap_to_best_member=1.0)}))
    result = run(project, *(["--require-baseline"] if require else []))
    message = (f"baseline file {path} has no entry for torch, so its accuracy is not checked; record one "
               "with --record-baseline from a run you trust")
    if require:
        result.assert_outcomes(passed=3, failed=1)
        result.stdout.fnmatch_lines([f"{message} (--require-baseline)",
                                     "FAILED test_cases.py::test_predict[[]torch[]] - Failed: baseline file*"])
    else:
        result.assert_outcomes(passed=3, skipped=1)
        result.stdout.fnmatch_lines([f"SKIPPED [[]1[]] *: {message}"])
    assert result.ret == (1 if require else 0)
    markdown = report(project)
    assert f"Checked against {path}" in markdown.replace("\\", "")
    column = baseline_column(markdown)
    assert column["torch"] == "no baseline" and column["tensorflow"].startswith("pass")
