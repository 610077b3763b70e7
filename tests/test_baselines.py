"""``harness.baselines``: stored expectations, their checks, recording and the report's assessment."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import baselines
from harness.errors import BaselineError
from harness.run_end import reanalyse
from harness.scoring.record import RunAnalysis
from tests.run_fixtures import RunSpec, load_run, write_run


@pytest.fixture(scope="module")
def analysis(tmp_path_factory) -> RunAnalysis:
    return reanalyse(write_run(tmp_path_factory.mktemp("run")))


def write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def good_baseline(**ensemble) -> dict:
    return {"schema": 1, "members": {"torch": {"test_accuracy": 0.30, "tolerance": 0.05}},
            "ensemble": {"test_accuracy": 0.35, "tolerance": 0.05, **ensemble}}


# -- load -------------------------------------------------------------------------
def test_a_missing_file_says_how_to_record_one(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="no baseline file .* record one with --record-baseline"):
        baselines.load(tmp_path / "smoke.json")


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not valid JSON"),
    ({"members": {}, "ensemble": {}}, 'lacks "schema": 1'),
    ({"schema": 1, "ensemble": {}}, 'has no "members" object'),
    ({"schema": 1, "members": {"jax": 0.3}, "ensemble": {"test_accuracy": 0.3, "tolerance": 0.1}},
     "entry 'jax' is not an object"),
    ({"schema": 1, "members": {"jax": {"test_accuracy": 1.3, "tolerance": 0.1}},
      "ensemble": {"test_accuracy": 0.3, "tolerance": 0.1}}, "jax.test_accuracy must be a number from 0 to 1"),
    ({"schema": 1, "members": {}, "ensemble": {"test_accuracy": 0.3, "tolerance": True}},
     "ensemble.tolerance must be a number"),
    ({"schema": 1, "members": {}, "ensemble": {"test_accuracy": 0.3, "tolerance": 0.1, "method": "best"}},
     "ensemble.method: unknown ensemble variant 'best'"),
    ({"schema": 1, "members": {}, "ensemble": {"test_accuracy": 0.3, "tolerance": 0.1,
                                               "max_gap_to_best_member": -1}},
     "max_gap_to_best_member must be a number from 0 to 1"),
    ({"schema": 1, "members": {"jax": {"test_accuracy": 0.3, "tolerance": 0.1, "spread": "wide"}},
      "ensemble": {"test_accuracy": 0.3, "tolerance": 0.1}}, "jax.spread must be a number"),
])
def test_a_malformed_file_names_itself_the_problem_and_the_fix(tmp_path: Path, content, message) -> None:
    path = write(tmp_path / "smoke.json", content)
    with pytest.raises(BaselineError, match=message) as err:
        baselines.load(path)
    assert str(path) in str(err.value) and "--record-baseline" in str(err.value)


def test_the_variant_may_be_named_either_way(tmp_path: Path) -> None:
    for key in ("method", "variant"):
        baseline = baselines.load(write(tmp_path / f"{key}.json", good_baseline(**{key: "fitted+temperature"})))
        assert baselines.ensemble_variant(baseline) == "fitted+T"
    assert baselines.ensemble_variant(good_baseline()) == "seed"


# -- checks ---------------------------------------------------------------------------
def test_a_failing_member_check_says_measured_expected_and_tolerance() -> None:
    verdict = baselines.check_member(good_baseline(), Path("b.json"), "torch", 0.2)
    assert not verdict.passed
    assert verdict.message == ("torch test accuracy 0.2000 is below the baseline: expected at least "
                               "0.3000 - tolerance 0.0500 = 0.2500")
    assert baselines.check_member(good_baseline(), Path("b.json"), "torch", 0.25).passed


def test_a_member_without_an_entry_is_not_checked_and_says_how_to_record_one() -> None:
    verdict = baselines.check_member(good_baseline(), Path("b.json"), "jax", 0.2)
    assert verdict.passed is None
    assert verdict.message == ("baseline file b.json has no entry for jax, so its accuracy is not checked; "
                               "record one with --record-baseline from a run you trust")


def test_a_member_verdict_straight_from_the_file_never_raises(tmp_path: Path) -> None:
    none = baselines.member_verdict(tmp_path / "mine.json", "mine", "torch", 0.2)
    assert none.passed is None
    assert none.message == (f"no baseline for profile mine (no file {tmp_path / 'mine.json'}); accuracy is "
                            "not checked: record one with --record-baseline from a run you trust")
    broken = baselines.member_verdict(write(tmp_path / "bad.json", "{"), "bad", "torch", 0.2)
    assert broken.passed is False and "is not valid JSON" in broken.message
    good = baselines.member_verdict(write(tmp_path / "good.json", good_baseline()), "good", "torch", 0.2)
    assert good.passed is False and "is below the baseline" in good.message


def test_the_ensemble_check_uses_the_variant_the_baseline_names(analysis: RunAnalysis) -> None:
    baseline = good_baseline(method="fitted+T", test_accuracy=0.0)
    verdict = baselines.check_ensemble_variant(baseline, Path("b.json"), analysis)
    assert verdict.subject == "ensemble (fitted+T)"
    assert verdict.measured == analysis.variants["fitted+T"].test.accuracy
    assert verdict.passed


def test_a_variant_the_run_cannot_make_is_a_clear_error(tmp_path: Path) -> None:
    seed_faithful = reanalyse(write_run(tmp_path, RunSpec(n_val=0)))
    with pytest.raises(BaselineError, match="checks the fitted ensemble, which this run could not make: "
                                            "needs a validation split"):
        baselines.check_ensemble_variant(good_baseline(method="fitted"), Path("b.json"), seed_faithful)


def test_the_gap_to_the_best_member_is_judged_and_said_either_way() -> None:
    analysis = RunAnalysis.from_json({
        "run_id": "r", "method": "seed", "best_member": {"name": "cntk", "accuracy": 0.32},
        "variants": {"seed": {"test": {"accuracy": 0.30}}, "fitted+T": {"test": {"accuracy": 0.35}}}})
    within = baselines.check_gap(analysis, "seed", margin=0.03)
    assert within.passed
    assert within.message == ("The ensemble (seed) test accuracy 0.3000 is 0.0200 below its best member cntk "
                              "(0.3200); margin 0.0300, so it is not worse than its best member by more "
                              "than the margin")
    beyond = baselines.check_gap(analysis, "seed", margin=0.01)
    assert not beyond.passed and beyond.message.endswith("margin 0.0100, more than the allowed margin")
    above = baselines.check_gap(analysis, "fitted+temperature", margin=0.0)
    assert above.passed and "0.0300 above its best member" in above.message


# -- record ---------------------------------------------------------------------------
def test_recording_writes_a_baseline_that_loads_and_passes(tmp_path: Path, analysis: RunAnalysis) -> None:
    path = tmp_path / "baselines" / "smoke.json"
    data = baselines.record(path, "smoke", analysis)
    assert baselines.load(path) == data
    assert data["ensemble"]["method"] == "seed" and data["recorded_from_run"] == analysis.run_id
    assert data["ensemble"]["max_gap_to_best_member"] == baselines.MARGIN_TO_BEST["smoke"]
    assessment = baselines.assess(analysis, path)
    assert assessment.state == "checked"
    assert all(v.passed for v in assessment.members.values()) and assessment.ensemble.passed


def test_recording_a_scaled_variant_names_it(tmp_path: Path) -> None:
    from harness.scoring.analysis import analyse
    scaled = analyse(load_run(write_run(tmp_path)), "fitted+T")
    data = baselines.record(tmp_path / "b.json", "smoke", scaled)
    assert data["ensemble"]["method"] == "fitted+T"
    assert data["ensemble"]["test_accuracy"] == round(scaled.variants["fitted+T"].test.accuracy, 4)


def test_recording_without_an_ensemble_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="no ensemble"):
        baselines.record(tmp_path / "b.json", "smoke", RunAnalysis(run_id="r", method="seed"))


def test_recording_with_history_stores_the_spread(tmp_path: Path, analysis: RunAnalysis) -> None:
    earlier = [{"run_id": f"r{i}", "fingerprint": analysis.fingerprint, "method": "seed",
                "ensemble": {"accuracy": 0.30 + 0.01 * i}, "members": {"torch": {"test_accuracy": 0.2 + 0.02 * i}}}
               for i in range(3)]
    other_data = {"run_id": "x", "fingerprint": "other", "method": "seed", "ensemble": {"accuracy": 0.9},
                  "members": {}}
    data = baselines.record(tmp_path / "b.json", "smoke", analysis, history=[*earlier, other_data])
    assert data["members"]["torch"]["spread"] > 0
    assert data["ensemble"]["spread"] > 0
    assert "spread" not in data["members"]["jax"], "jax has no earlier runs"
    baselines.load(tmp_path / "b.json")


# -- assess (for the report) -----------------------------------------------------------------
def test_assess_reports_a_missing_or_broken_baseline_without_raising(tmp_path: Path, analysis: RunAnalysis
                                                                     ) -> None:
    missing = baselines.assess(analysis, tmp_path / "none.json")
    assert missing.state == "missing" and "record one" in missing.message
    assert missing.members == {} and missing.ensemble is None
    assert missing.gap.margin == baselines.MARGIN_TO_BEST["smoke"]
    broken = baselines.assess(analysis, write(tmp_path / "bad.json", "{"))
    assert broken.state == "invalid" and "not valid JSON" in broken.message
    recorded = baselines.assess(analysis, tmp_path / "none.json", recording=True)
    assert recorded.state == "recorded"


def test_assess_marks_failures_and_members_without_entries(tmp_path: Path, analysis: RunAnalysis) -> None:
    baseline = good_baseline(test_accuracy=0.99, tolerance=0.0, max_gap_to_best_member=0.5)
    baseline["members"]["torch"] = {"test_accuracy": 0.99, "tolerance": 0.01, "spread": 0.02}
    result = baselines.assess(analysis, write(tmp_path / "b.json", baseline)).to_json()
    by_subject = {v["subject"]: v for v in result["members"]}
    assert by_subject["torch"]["passed"] is False and by_subject["torch"]["spread"] == 0.02
    assert by_subject["jax"]["passed"] is None
    assert result["ensemble"]["passed"] is False and "0.9900" in result["ensemble"]["message"]
    assert result["gap"]["margin"] == 0.5 and result["gap"]["passed"]
