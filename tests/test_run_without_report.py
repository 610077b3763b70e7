"""A run never ends 0 without its report, and never loses the report an earlier session wrote.

The jobs have finished already: a synthetic run folder in the real layout
stands in for them (``tests.run_fixtures``; in the pytest session a conftest
hands the run its analysis, as in ``tests/test_missing_baseline.py``), and
the report is made to fail as a full disk or a plotting library would.
Issue 30, break 4.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import options, report
from harness.run_store import PREVIOUS
from harness.session import BenchmarkRun, BenchmarkSession
from harness.workload import layout
from tests.run_fixtures import RunSpec, write_run
from tests.test_missing_baseline import FINISHED_JOBS

pytest_plugins = ["pytester"]

BACKENDS = ("tensorflow", "jax")
CASES = '''
def test_predict(backend_name, kbench):
    kbench.check("predict", backend_name)
'''
BROKEN_REPORT = '''
import harness.report


def broken(*args, **kwargs):
    raise OSError(28, "No space left on device")


harness.report.render_reports = broken
'''


def test_a_session_whose_report_cannot_be_written_fails_with_one_line_naming_kbench_report(
        pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: "2 passed", exit 0, no report.html, report.md or ensemble.json: CI went green with nothing."""
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    run_dir = write_run(tmp_path / "shared", RunSpec(run_id="mine-1", profile="mine", backends=BACKENDS))
    (tmp_path / "mine.json").write_text(json.dumps(json.loads((run_dir / layout.RUN_JSON).read_text())["profile"]))
    pytester.makepyfile(test_cases=CASES)
    pytester.makeconftest(FINISHED_JOBS + BROKEN_REPORT)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--backend", ",".join(BACKENDS), "--profile", str(tmp_path / "mine.json"),
        "--shared-dir", str(tmp_path / "shared"), "--work-dir", str(tmp_path / "work"), "--run-id", "mine-1",
        "--baselines", "", timeout=300)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    line = (f"keras-multibackend: could not write the report: [Errno 28] No space left on device; render it again "
            f"with kbench report {run_dir}")
    assert [text for text in output.splitlines() if text.startswith("keras-multibackend: ")] == [line]
    assert "Traceback" not in output
    result.assert_outcomes(skipped=len(BACKENDS), errors=1)  # (no baseline: the cases skip)


def session_on(shared: Path) -> BenchmarkSession:
    cfg = options.build_run(shared, backend=",".join(BACKENDS), profile="smoke", executor="local", dataset="keras",
                            shared_dir=shared, run_id="synthetic1", work_dir=shared / "work",
                            reports_dir=shared / "reports", baselines="")
    session = BenchmarkSession([cfg], say=lambda line: None)
    run: BenchmarkRun = session.runs[0]
    run.started = True  # its jobs finished in an earlier session (the synthetic run)
    return session


@pytest.fixture
def shared(tmp_path):
    run_dir = write_run(tmp_path, RunSpec(backends=BACKENDS))
    for name in (layout.REPORT_HTML, layout.REPORT_MD, layout.ENSEMBLE_JSON):
        (run_dir / name).write_text("from an earlier session")
    return tmp_path


def test_the_earlier_report_is_kept_until_the_new_one_is_written(shared, monkeypatch):
    """Before: the earlier report was deleted when the run started, and lost when the new one failed."""
    run_dir = shared / "runs" / "synthetic1"
    session = session_on(shared)
    session.runs[0].store.set_aside_derived(shared / "reports" / "synthetic1")  # as the run's start does

    def broken(*args, **kwargs):
        raise RuntimeError("Glyph 29483 missing from font(s) DejaVu Sans.")

    monkeypatch.setattr(report, "render_reports", broken)
    session.end()
    [failure] = session.failures
    assert failure.endswith(f"render it again with kbench report {run_dir}")
    assert (run_dir / (layout.REPORT_HTML + PREVIOUS)).read_text() == "from an earlier session"
    assert not (run_dir / layout.REPORT_HTML).exists(), "a stale report never looks current"

    monkeypatch.undo()
    session = session_on(shared)
    session.end()
    assert session.failures == []
    assert (run_dir / layout.REPORT_HTML).read_text().startswith("<!DOCTYPE html>")
    assert not list(run_dir.glob("*" + PREVIOUS)), "set aside only until this session wrote its own"


def test_a_run_whose_analysis_fails_is_one_line_naming_kbench_report_not_a_traceback(shared, monkeypatch):
    from harness import session as session_module

    def broken(*args, **kwargs):
        raise ValueError("could not convert string to float: 'abc'")

    monkeypatch.setattr(session_module, "analyse_run", broken)
    session = session_on(shared)
    session.end()
    run_dir = shared / "runs" / "synthetic1"
    assert session.failures == [
        (f"could not analyse run synthetic1 (ValueError: could not convert string to float: 'abc'); its results "
         f"are in {run_dir}: analyse them again with kbench report {run_dir}")]
