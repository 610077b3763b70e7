"""Repeats (``--repeats N``): means with 95% intervals over runs, and "tied" unless the intervals separate.

The summary is pure and tested on analyses built here; one end-to-end case
(marked slow) runs two real repeats of TensorFlow on a tiny profile and image folder.
"""
from __future__ import annotations

import json

import pytest

from harness import options
from harness.profiles import Profile
from harness.report import repeats_view
from harness.run_end import finish_repeats
from harness.scoring.intervals import mean_ci
from harness.scoring.record import EnsembleFigures, MemberFigures, Metrics, RunAnalysis
from harness.scoring.repeats import ENSEMBLE, summarise_repeats
from tests.conftest import REPO, write_image_folder

pytest_plugins = ["pytester"]


def analysis(i: int, accuracy: dict[str, float | None], rate: dict[str, float], ensemble: float) -> RunAnalysis:
    members = {name: (MemberFigures(state="ok", test=Metrics(accuracy=acc)) if acc is not None
                      else MemberFigures(state="failed", reason="train failed"))
               for name, acc in accuracy.items()}
    speed = {"backends": {name: {"train": {"images_per_s": {"median": value}}} for name, value in rate.items()}}
    return RunAnalysis(run_id=f"rep-r{i}", method="seed", members=members, speed=speed,
                       ensemble=EnsembleFigures(test=Metrics(accuracy=ensemble)),
                       settings={"profile": {"name": "smoke", "seed": 100, "train_seed": 100 + i - 1}})


def three(separated: bool) -> list[RunAnalysis]:
    gap = 0.10 if separated else 0.002
    return [analysis(i, {"jax": 0.50 + d, "torch": 0.50 + gap + d}, {"jax": 400 + 10 * d * 100, "torch": 405 - d * 100},
                     0.56 + d) for i, d in enumerate((0.0, 0.01, -0.01), start=1)]


def test_each_figure_is_the_mean_of_the_repeats_with_a_t_interval():
    summary = summarise_repeats(three(separated=True))
    assert summary["repeats"] == 3
    assert [r["train_seed"] for r in summary["runs"]] == [100, 101, 102]
    torch = summary["accuracy"]["torch"]
    assert torch["values"] == [0.60, 0.61, 0.59] and torch["n"] == 3
    assert (torch["mean"], torch["ci_low"], torch["ci_high"]) == pytest.approx(mean_ci([0.60, 0.61, 0.59]))
    assert torch["ci_low"] < torch["mean"] < torch["ci_high"]
    assert summary["accuracy"][ENSEMBLE]["mean"] == pytest.approx(0.56)


def test_a_backend_is_the_most_accurate_only_where_the_intervals_separate_it():
    assert summary_sentence(separated=True).startswith("torch is the most accurate: its 95% interval")
    tied = summary_sentence(separated=False)
    assert tied.startswith("torch and jax are tied for the most accurate: their 95% intervals overlap"), tied


def summary_sentence(separated: bool) -> str:
    return summarise_repeats(three(separated))["ranking"]["accuracy"]


def test_speed_overlapping_across_repeats_is_called_tied():
    ranking = summarise_repeats(three(separated=True))["ranking"]["speed"]
    assert "tied for the fastest" in ranking, ranking


def test_a_backend_missing_from_a_repeat_is_averaged_over_fewer_runs_and_says_so():
    runs = three(separated=True)
    runs[1] = analysis(2, {"jax": None, "torch": 0.61}, {"torch": 404}, 0.57)
    summary = summarise_repeats(runs)
    assert summary["accuracy"]["jax"]["n"] == 2 and summary["missing"] == {"jax": ["rep-r2"]}
    assert any("jax has no test accuracy from rep-r2" in s for s in repeats_view.sentences(summary))


def test_the_repeats_report_is_written_as_json_markdown_and_html(tmp_path):
    paths, lines = finish_repeats(three(separated=True), tmp_path / "rep", "3 repeats of run rep")
    assert [p.name for p in paths] == ["repeats.json", "repeats.md", "repeats.html"]
    stored = json.loads(paths[0].read_text())
    assert stored["accuracy"]["torch"]["values"] == [0.60, 0.61, 0.59]
    text = paths[1].read_text()
    assert "| torch | 3 | 60.0% |" in text and "train_seed 100, 101, 102" in text
    assert "<table>" in paths[2].read_text() and lines[0].startswith("torch is the most accurate")


def test_repeats_make_one_run_each_with_its_own_recorded_training_seed(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    common = {"backend": "jax", "profile": "smoke", "executor": "local", "dataset": str(data),
              "shared_dir": tmp_path / "s", "work_dir": tmp_path / "w", "reports_dir": tmp_path / "r"}
    runs = options.build_runs({**common, "run_id": "nightly", "repeats": "3"}, tmp_path, tmp_path)
    assert [(r.run_id, r.label, r.profile.train_seed) for r in runs] == [
        ("nightly-r1", "r1", 20170318), ("nightly-r2", "r2", 20170319), ("nightly-r3", "r3", 20170320)]
    assert {r.profile.seed for r in runs} == {20170318}, "the same data subsets in every repeat"
    with pytest.raises(Exception, match="--record-baseline writes one run"):
        options.build_runs({**common, "repeats": "2", "record_baseline": True}, tmp_path, tmp_path)


TINY = Profile(name="tiny", description="repeats", n_train=24, n_val=6, n_test=12, epochs=2, batch_size=8,
               learning_rate=1e-3, predict_batch_size=4, job_timeout_s=600, seed=5, speed_steps=12,
               speed_predict_batches=3)
"""A tiny profile with a speed phase: the repeats report reads the accuracy and the speed of each run."""


@pytest.mark.slow
def test_two_real_repeats_train_with_their_own_seeds_and_write_the_repeats_report(pytester, tmp_path):
    """Two real TensorFlow runs of a tiny profile on a tiny image folder, then the repeats report over them."""
    profile = tmp_path / "tiny.json"
    profile.write_text(json.dumps(TINY.to_json()))
    pytester.makeconftest("")
    for name in ("test_backends.py", "conftest.py"):
        source = REPO / "benchmarks" / name
        if source.exists():
            pytester.makepyfile(**{name[:-3]: source.read_text()})
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--backend", "tensorflow", "--profile", str(profile), "--repeats", "2",
        "--dataset", str(write_image_folder(tmp_path / "data")), "--threads", "1", "--shared-dir", str(tmp_path / "shared"), "--run-id", "rep",
        "--work-dir", str(REPO / ".kbench"), "--reports-dir", str(tmp_path / "reports"),
        "--baselines", str(tmp_path / "none"), "-k", "not fidelity and not serve")  # what the report reads
    assert result.ret == 0, result.stdout.str()[-2000:]
    out = result.stdout.str()
    assert "test_train[r1-tensorflow]" in out and "test_train[r2-tensorflow]" in out
    assert "repeats of seed (2 runs, means with 95% intervals):" in out
    seeds = [json.loads((tmp_path / "shared" / "runs" / f"rep-r{i}" / "tensorflow" / "train.json").read_text())
             ["settings"]["train_seed"] for i in (1, 2)]
    assert seeds == [5, 6]
    summary = json.loads((tmp_path / "reports" / "rep" / "repeats.json").read_text())
    assert summary["accuracy"]["tensorflow"]["n"] == 2 and summary["speed"]["tensorflow"]["n"] == 2
