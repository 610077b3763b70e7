"""Hostile conditions met by a whole session: one clear line each, never a traceback or lost results.

Real parts: a pytest process running the plugin (pytester), a real data set
folder with a dangling symbolic link, a real full tmpfs (needs root and mount
permission; otherwise skipped, like ``tests/test_shared_folder.py``).
"""
from __future__ import annotations

import os

import pytest

from harness import options
from harness.jobs import JobResult, JobState
from harness.run_store import RunStore
from harness.session import BenchmarkRun
from harness.workload import layout
from harness.workload.layout import ENSEMBLE_JSON
from tests.run_fixtures import RunSpec, write_run
from tests.test_shared_folder import fill, tmpfs  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("keras_download_cached")

pytest_plugins = ["pytester"]


def test_a_dangling_symlink_in_the_data_set_is_one_line_once(pytester, image_folder, tmp_path):
    """Before: the same FileNotFoundError traceback three times, once per case."""
    os.symlink(tmp_path / "nowhere.png", image_folder / "train" / min(os.listdir(image_folder / "train"))
               / "dangling.png")
    pytester.makepyfile(test_cases="def test_train(backend_name, kbench):\n    kbench.job(backend_name, 'train')\n"
                                   "def test_predict(backend_name, kbench):\n    kbench.job(backend_name, 'predict')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--backend", "tensorflow,jax",
                                           "--dataset", str(image_folder), "--shared-dir", str(tmp_path / "shared"))
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert text.count("dangling.png, which cannot be read (No such file or directory: a dangling symbolic "
                      "link); remove or fix it") == 1
    assert "Traceback" not in text


def session_on(shared) -> tuple[BenchmarkRun, list[str]]:
    cfg = options.build_run(shared, backend="tensorflow,jax", profile="smoke", executor="local", dataset="keras",
                            shared_dir=shared, run_id="synthetic1", work_dir=shared / "work",
                            reports_dir=shared / "reports")
    said: list[str] = []
    return BenchmarkRun(cfg, say=said.append), said


def test_a_shared_folder_that_fills_up_mid_run_is_one_line_each_and_the_run_is_still_analysed(tmpfs):  # noqa: F811
    """Before: the job said the disk was full, then the harness printed tracebacks.

    The run has no serve jobs: their files would not fit on this 256 KiB folder before it is filled."""
    write_run(tmpfs, RunSpec(backends=("tensorflow", "jax"), serve_queries=0))
    fill(tmpfs)
    session, said = session_on(tmpfs)
    session._on_result(JobResult("jax", "predict", JobState.FAILED, reason="No space left on device"))
    statuses = {(b, p): JobResult(b, p, JobState.SUCCEEDED) for b in ("tensorflow", "jax") for p in layout.PHASES}
    session.scheduler = type("Ended", (), {"run_all": lambda self: statuses})()
    analysis = session.finish()
    assert analysis.ensemble is not None, "the finished jobs' results are still used"
    hint = "the shared folder is full: free some space, then run again with --run-id synthetic1 to resume"
    assert [s for s in said if "could not record how it ended" in s] == [
        (f"  [jax/predict] could not record how it ended in {tmpfs / 'runs' / 'synthetic1'} (No space left on "
         f"device); {hint}")]
    assert sum(f"could not write {tmpfs / 'runs' / 'synthetic1' / ENSEMBLE_JSON}" in s and hint in s
               for s in said) == 1


def test_a_hand_edited_profile_name_in_run_json_writes_nothing_outside_its_folders(tmp_path, capsys):
    """Re-rendering a run whose run.json names the profile '../../escape': the report, no escape."""
    import json

    from harness import cli

    run_dir = write_run(tmp_path / "shared", RunSpec(backends=("tensorflow", "jax")))
    settings = json.loads((run_dir / layout.RUN_JSON).read_text())
    settings["profile"]["name"] = "../../../escape"
    (run_dir / layout.RUN_JSON).write_text(json.dumps(settings))
    history_dir = tmp_path / "a" / "b" / "history"
    assert cli.main(["report", str(run_dir), "--history-dir", str(history_dir), "--baselines", "",
                     "--reports-dir", str(tmp_path / "out")]) == 0
    assert not list(tmp_path.rglob("escape*")), "nothing written outside the history folder"
    said = capsys.readouterr().out
    assert "profile name '../../../escape' is not a safe name" in said and (run_dir / "report.md").is_file()
    assert cli.main(["report", str(run_dir), "--baselines", str(tmp_path), "--reports-dir", str(tmp_path / "out")]) == 1
    assert "profile name '../../../escape' is not a safe name" in capsys.readouterr().err


def test_a_profile_whose_name_would_escape_its_folders_stops_the_session_before_anything(pytester, tmp_path):
    import json

    from harness import profiles

    profile = pytester.path / "mine.json"
    profile.write_text(json.dumps(dict(profiles.get("smoke").to_json(), name="../../../../somewhere/else")))
    pytester.makepyfile(test_cases="def test_train(backend_name, kbench):\n    kbench.job(backend_name, 'train')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--backend", "tensorflow", "--profile",
                                           str(profile), "--shared-dir", str(tmp_path / "shared"))
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "Traceback" not in text
    assert "name '../../../../somewhere/else' is not a safe name (it names the history and baseline files)" in text
    assert not (tmp_path / "shared").exists()


def test_a_report_that_fails_to_render_is_one_summary_line_and_the_run_is_kept(tmp_path, monkeypatch):
    """Before: a library's error in the report ended the session with a traceback and said nothing."""
    from harness import report, run_end

    run_dir = write_run(tmp_path, RunSpec(backends=("tensorflow", "jax")))
    analysis = run_end.reanalyse(run_dir)

    def broken(*args, **kwargs):
        raise RuntimeError("Glyph 29483 missing from font(s) DejaVu Sans.\nmore")

    monkeypatch.setattr(report, "render_reports", broken)
    settings = run_end.EndSettings(shared_dir=tmp_path, history_dir=tmp_path / "history")
    end = run_end.finish(analysis, RunStore.at(run_dir), settings)
    [line] = [s for s in end.lines if s.startswith("could not write the report")]
    assert "RuntimeError: Glyph 29483 missing from font(s) DejaVu Sans. more" in line and "\n" not in line
    assert line.endswith(f"render it again with kbench report {run_dir}")
    assert (run_dir / "jax" / "probs_test.npy").is_file()
