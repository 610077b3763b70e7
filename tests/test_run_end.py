"""The end of a run has one home (``harness.run_end``), and the analysis one typed model.

``tests/fixtures/ensemble-schema2.json`` was written by the harness before the
analysis became a typed model (commit eb23c96, from a synthetic five-backend
run with cntk failed), and ``report-schema2.md`` is the report that harness
rendered from it with ``benchmarks/baselines/smoke.json``: re-rendering the
stored file today must give the same report, apart from when it was generated.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from harness import run_end
from harness.cli import main as kbench_main
from harness.errors import ResultError
from harness.report.render import md_escape
from harness.scoring.record import RunAnalysis, Validation, from_json, read_analysis
from harness.workload import layout
from tests.run_fixtures import RunSpec, write_run

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = FIXTURES.parent.parent
STORED = FIXTURES / "ensemble-schema2.json"
GENERATED = re.compile(r"generated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def stored_run(tmp_path: Path) -> Path:
    """A run folder holding only the stored ensemble.json (its job files are gone)."""
    run_dir = Path(layout.run_dir(str(tmp_path / "shared"), "fixture-schema2"))
    run_dir.mkdir(parents=True)
    shutil.copy(STORED, run_dir / layout.ENSEMBLE_JSON)
    return run_dir


def test_an_older_ensemble_json_reads_into_the_model_and_back_unchanged() -> None:
    data = json.loads(STORED.read_text())
    analysis = read_analysis(STORED)
    assert analysis.members["cntk"].state == "failed" and analysis.members["cntk"].test is None
    assert analysis.ensemble.method == "seed" and analysis.best_member.name in analysis.members
    assert analysis.variants["seed"].test.accuracy == data["variants"]["seed"]["test"]["accuracy"]
    assert analysis.to_json() == data


def test_an_older_ensemble_json_re_renders_the_report_it_rendered(tmp_path: Path) -> None:
    run_dir = stored_run(tmp_path)
    # the smoke baseline as it was before baselines named the data they were recorded on (this older run's
    # data is not today's smoke data, and a baseline that names other data checks nothing)
    baseline = json.loads((REPO / "benchmarks" / "baselines" / "smoke.json").read_text())
    baseline.pop("data_fingerprint")
    (tmp_path / "benchmarks" / "baselines").mkdir(parents=True)
    (tmp_path / "benchmarks" / "baselines" / "smoke.json").write_text(json.dumps(baseline))
    end = run_end.rerender(run_dir, stored=True, baselines_dir=tmp_path / "benchmarks" / "baselines",
                           history_dir=tmp_path / "history")
    assert end.report_paths == [run_dir / layout.REPORT_HTML, run_dir / layout.REPORT_MD]
    assert end.assessment.state == "checked"
    expected = GENERATED.sub("generated T", (FIXTURES / "report-schema2.md").read_text())
    expected = expected.replace("<repo>", md_escape(str(tmp_path)))  # the baseline file's path, as markdown
    assert GENERATED.sub("generated T", (run_dir / layout.REPORT_MD).read_text()) == expected


def test_a_file_from_before_later_figures_reads_them_as_absent_and_still_renders(tmp_path: Path) -> None:
    run_dir = stored_run(tmp_path)
    data = json.loads(STORED.read_text())
    for key in ("harness", "validation", "recommendation"):
        del data[key]
    for member in data["members"].values():
        member.pop("flops")
    for variant in [*data["variants"].values(), data["ensemble"]]:
        variant.pop("versus_best_member")
    (run_dir / layout.ENSEMBLE_JSON).write_text(json.dumps(data))
    end = run_end.rerender(run_dir, stored=True, history_dir=tmp_path / "history")
    assert end.analysis.harness is None and end.analysis.members["jax"].flops == {}
    assert end.analysis.validation.available and not end.analysis.validation.seed_faithful
    written = end.analysis.to_json()
    assert written["validation"] == {"available": True, "seed_faithful": False, "reason": ""}
    assert {k: v for k, v in written.items() if k not in ("validation", "members")} == {
        k: v for k, v in data.items() if k != "members"}
    assert written["members"] == {name: {**row, "flops": {}} for name, row in data["members"].items()}
    markdown = (run_dir / layout.REPORT_MD).read_text()
    assert "Recommended" not in markdown and "MFU" not in markdown and "| jax |" in markdown


def test_the_command_line_re_renders_a_stored_analysis(tmp_path: Path, capsys) -> None:
    run_dir = stored_run(tmp_path)
    out = tmp_path / "out"
    assert kbench_main(["report", str(run_dir), "--stored", "--history-dir", str(tmp_path / "history"),
                        "--baselines", "", "--reports-dir", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-4:] == [f"report: {run_dir / layout.REPORT_HTML}", f"report: {run_dir / layout.REPORT_MD}",
                            f"report: {out / run_dir.name / layout.REPORT_HTML}",
                            f"report: {out / run_dir.name / layout.REPORT_MD}"]
    report = (run_dir / layout.REPORT_MD).read_text()
    assert "**No baseline:** no baseline for profile smoke (no baseline folder was given)" in report


@pytest.mark.parametrize(("content", "message"), [
    ({"schema": 1, "run_id": "x"}, "has schema 1, but this harness reads schema 2; analyse the run again"),
    ([1, 2], "does not hold a JSON object"),
    ({"schema": 2, "run_id": "x", "method": "seed", "members": {"jax": {"reason": "no state"}}}, "is malformed"),
])
def test_an_analysis_it_cannot_read_is_one_line_naming_the_fix(tmp_path: Path, content, message) -> None:
    path = tmp_path / layout.ENSEMBLE_JSON
    path.write_text(json.dumps(content))
    with pytest.raises(ResultError, match=message) as err:
        read_analysis(path)
    assert "kbench report <run folder> --write-analysis" in str(err.value)


def test_a_re_render_analyses_the_run_folder_again_and_can_store_it(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "shared", RunSpec(skipped={"cntk": "cntk cannot run here"}))
    end = run_end.rerender(run_dir, method="uniform", write_analysis=True, history_dir=tmp_path / "history")
    stored = read_analysis(run_dir / layout.ENSEMBLE_JSON)
    assert stored == end.analysis and stored.method == "uniform"
    assert stored.statuses["cntk/train"]["state"] == "skipped"
    assert (tmp_path / "history" / "smoke.jsonl").read_text().count("\n") == 1


def test_a_folder_outside_a_runs_folder_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"is not a run folder \(<shared>/runs/<run-id>\); give the folder of a run"):
        run_end.rerender(tmp_path / "somewhere")


def test_recording_a_baseline_happens_at_the_end_and_is_said(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "shared")
    analysis = run_end.reanalyse(run_dir)
    baseline = tmp_path / "baselines" / "smoke.json"
    settings = run_end.EndSettings(shared_dir=tmp_path / "shared", history_dir=tmp_path / "history",
                                   baseline_path=baseline, record_baseline=True)
    end = run_end.finish(analysis, run_dir, settings)
    assert end.lines == [f"recorded the baseline {baseline}"]
    assert end.assessment.state == "recorded"
    assert json.loads(baseline.read_text())["recorded_from_run"] == analysis.run_id
    assert "This run recorded the baseline" in (run_dir / layout.REPORT_MD).read_text()


def test_the_model_keeps_keys_the_file_leaves_out_absent() -> None:
    bare = RunAnalysis(run_id="r", method="seed")
    assert set(bare.to_json()) == {"schema", "run_id", "method", "fingerprint", "classes", "n_test", "n_val",
                                   "data", "members", "left_out", "variants", "unavailable_variants",
                                   "ensemble", "settings", "statuses"}
    read = from_json(bare.to_json())
    assert read.validation == Validation(False, False, "this run held out no validation split")
    assert dataclasses.replace(read, validation=None) == bare
