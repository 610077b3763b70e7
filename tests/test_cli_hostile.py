"""``kbench`` given hostile options or interrupted: one line each, before any work, never a traceback.

Synthetic finished runs in the real layout (``tests.run_fixtures``). Issue 30,
break 10 and the minor ones about ``kbench``'s own options.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import cli, run_end
from harness.run_store import RunStore
from tests.run_fixtures import RunSpec, write_run

pytestmark = pytest.mark.usefixtures("keras_download_cached")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("shared"), RunSpec(backends=("tensorflow", "jax")))


def kbench(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.err.strip()


@pytest.mark.parametrize("extra, said", [
    (["--ensemble", "bogus"], "kbench: --ensemble: unknown ensemble variant 'bogus'; choose from seed, uniform"),
    (["--report-images", "-5"], "kbench: --report-images must be at least 1, not -5"),
])
def test_kbench_report_refuses_a_bad_option_in_one_line_before_any_work(run_dir, capsys, tmp_path, extra, said):
    """Before: --ensemble bogus was a ValueError traceback."""
    code, err = kbench(capsys, "report", str(run_dir), "--reports-dir", str(tmp_path), *extra)
    assert code == 1 and err.startswith(said) and "\n" not in err


@pytest.mark.parametrize("flag", ["--reports-dir", "--history-dir"])
def test_a_folder_option_naming_a_file_is_refused_naming_the_option(run_dir, capsys, tmp_path, flag):
    """Before: --reports-dir blamed the run folder; --history-dir was accepted with two warnings."""
    (tmp_path / "a-file").write_text("")
    code, err = kbench(capsys, "report", str(run_dir), "--reports-dir", str(tmp_path / "out"),
                       flag, str(tmp_path / "a-file"))
    assert code == 1
    assert err == f"kbench: {flag} {tmp_path / 'a-file'} is a file, not a folder; give {flag} a folder (it is made if missing)"


@pytest.mark.parametrize("extra, said", [
    (["--profile", "../../etc/passwd"], "kbench: profile name '../../etc/passwd' is not a safe name"),
    (["--model", "../x"], "kbench: model name '../x' is not a safe name"),
    (["--limit", "-5"], "argument --limit: --limit must be at least 1, not -5"),
])
def test_kbench_history_refuses_names_that_leave_its_folder_and_a_limit_below_one(run_dir, capsys, extra, said):
    """Before: both were accepted (an unsafe profile listed as "0 run(s) in None")."""
    code, err = kbench(capsys, "--shared-dir", str(run_dir.parent.parent), "history", *extra)
    assert code in (1, 2) and said in err


def test_kbench_report_on_a_run_a_benchmark_is_running_is_refused(run_dir, capsys, tmp_path):
    """Before: it wrote a report of a half-finished run and recorded its members as failed in the history."""
    running = RunStore.at(run_dir)
    running.acquire()
    try:
        code, err = kbench(capsys, "report", str(run_dir), "--reports-dir", str(tmp_path))
    finally:
        running.release()
    assert code == 1 and err.startswith("kbench: run synthetic1 is in use by pid ")
    assert err.endswith("wait for it to finish (its session writes the report), then run kbench report again if needed")


def test_ctrl_c_on_kbench_report_is_one_line(run_dir, capsys, tmp_path, monkeypatch):
    """Before: a KeyboardInterrupt traceback."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_end, "rerender", interrupted)
    code, err = kbench(capsys, "report", str(run_dir), "--reports-dir", str(tmp_path))
    assert code == 130 and err == "kbench report: interrupted (its files are written whole or not at all)"
