"""The serving section of a run (``harness.scoring.serving``), its verdict and its report, on synthetic runs.

The runs are written in the real run-folder layout (``tests.run_fixtures``):
each backend's serve.json as the job writes it (the smoke profile's settings),
and its kept answers, equal to its predict job's probabilities, or, for a
backend in ``serve_wrong``, to the previous query's.
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from harness import profiles
from harness.report import render
from harness.run_store import RunStore
from harness.scoring import loadgen_rules
from harness.scoring.analysis import analyse_run
from harness.scoring.gather import finished_run
from harness.verdicts import FAILED, PASSED, SKIPPED, judge
from harness.workload import layout
from tests.run_fixtures import RunSpec, write_run


def analysed(tmp_path, **spec):
    store = RunStore.at(write_run(tmp_path, RunSpec(**spec)))
    backends, statuses, skipped = finished_run(store)
    return store, statuses, analyse_run(store, backends, statuses, skipped)


SMOKE = profiles.get("smoke")


class FinishedRun:
    """What a verdict reads of a ``BenchmarkRun``, over a finished synthetic run (a stand-in: no jobs run)."""

    def __init__(self, store, statuses, analysis, profile=SMOKE):
        self.store, self.statuses, self.analysis = store, statuses, analysis
        self.config = SimpleNamespace(model=SimpleNamespace(name="seed", sha256="c0ffee"), profile=profile,
                                      record_baseline=False, require_baseline=False)

    def plans(self, phase):
        return phase in ("train", "predict", "serve") and self.config.profile.serve_seconds > 0

    def result(self, backend, phase):
        return self.statuses[(backend, phase)]

    def result_json(self, backend, phase):
        return self.store.read_result(backend, phase)

    def finish(self):
        return self.analysis


def test_each_scenario_is_judged_by_loadgens_rules(tmp_path):
    store, _, analysis = analysed(tmp_path, backends=("tensorflow", "jax"))
    section = analysis.serving
    assert section["available"] and section["audit_failed"] == {}
    row = section["backends"]["jax"]
    latency = store.read_result("jax", "serve")["single_stream"]["latency_s"]
    single = row["single_stream"]
    assert single["p90_ms"]["value"] == pytest.approx(1000 * loadgen_rules.percentile(latency, 0.9), abs=1e-4)
    assert single["p90_ms"]["ci_low"] <= single["p90_ms"]["value"] <= single["p90_ms"]["ci_high"]
    assert single["early_stopping"]["p90"]["discarded"] == 9, "200 queries, as LoadGen discards"
    assert single["early_stopping"]["p99"]["reason"] == "200 queries; p99 needs at least 662"
    assert not single["validity"]["valid"]
    assert single["validity"]["reasons"] == [f"ran {single['duration_s']:.3g} s; LoadGen's minimum duration is 10 s"]
    offline = row["offline"]
    assert [b["batch"] for b in offline["batches"]] == [1, 8, 32, 128] and offline["best"]["batch"] == 128
    assert all(b["ci_low"] <= b["images_per_s"] <= b["ci_high"] for b in offline["batches"])
    server = row["server"]
    assert server["peak_rate"] < server["failed_rate"] and not server["finished"]
    assert "the search stopped at its limit of 4 trials" in server["note"]
    assert [t["passed"] for t in server["trials"]] == [True, False, False, False]
    assert row["first_query"]["phase_s"] == 7.5 and row["audit"]["passed"] and row["audit"]["images"] == 288


def test_a_backend_whose_served_answers_are_wrong_fails_and_is_never_the_fastest(tmp_path):
    """torch serves the fastest of all (1 ms per image), but its answers are the previous query's: its
    case fails with the numbers, and no ranking sentence names it as the fastest."""
    store, statuses, analysis = analysed(tmp_path, backends=("tensorflow", "jax", "torch"),
                                         serve_ms={"torch": 1.0}, serve_wrong=("torch",))
    section = analysis.serving
    assert list(section["audit_failed"]) == ["torch"]
    for sentence in section["ranking"].values():
        assert not sentence.startswith("torch") and "torch left out: its served answers differ" in sentence
    run = FinishedRun(store, statuses, analysis)
    verdict = judge(run, "serve", "torch")
    assert verdict.outcome == FAILED
    assert verdict.message.startswith("torch/serve: the served answers differ from the predict job's for the "
                                      "same images and weights in 9 of 9 timed runs")
    assert judge(run, "serve", "jax").outcome == PASSED


def test_a_serve_cases_extra_info_holds_every_latency_and_each_scenarios_figures(tmp_path):
    store, statuses, analysis = analysed(tmp_path, backends=("tensorflow", "jax"))
    verdict = judge(FinishedRun(store, statuses, analysis), "serve", "jax")
    served = verdict.figures["serve"]
    latency = store.read_result("jax", "serve")["single_stream"]["latency_s"]
    assert served["single_stream_latency_ms"] == pytest.approx([1000 * s for s in latency], abs=1e-4)
    assert verdict.rounds == latency, "one pytest-benchmark round per SingleStream query"
    assert served["single_stream"]["p90_ms"]["value"] and served["single_stream"]["validity"]["valid"] is False
    assert served["offline"]["best_batch"] == 128 and served["offline"]["best_images_per_s"] > 0
    assert served["server"]["peak_rate"] > 0 and len(served["server"]["trials"]) == 4
    assert served["first_query"]["phase_s"] == 7.5 and served["audit"]["passed"] is True
    assert verdict.figures["model"] == "seed" and served["threads"] == 1


def test_a_profile_that_serves_nothing_skips_the_case(tmp_path):
    store, statuses, analysis = analysed(tmp_path, backends=("jax",))
    quiet = dataclasses.replace(SMOKE, serve_seconds=0.0)
    verdict = judge(FinishedRun(store, statuses, analysis, quiet), "serve", "jax")
    assert verdict.outcome == SKIPPED and verdict.message == "profile smoke serves nothing (serve_seconds is 0)"


def test_damaged_kept_answers_are_a_problem_named_with_the_fix(tmp_path):
    store = RunStore.at(write_run(tmp_path, RunSpec(backends=("tensorflow", "jax"))))
    store.file("jax", layout.SERVE_AUDIT).write_bytes(b"not a zip")
    backends, statuses, skipped = finished_run(store)
    section = analyse_run(store, backends, statuses, skipped).serving
    assert set(section["backends"]) == {"tensorflow"}
    assert "is unreadable" in section["problems"]["jax"] and "--rerun jax/serve" in section["problems"]["jax"]


def test_the_report_has_a_serving_section_with_each_verdict_and_the_wrong_answers(tmp_path):
    _, _, analysis = analysed(tmp_path, backends=("tensorflow", "jax", "torch"), serve_wrong=("torch",))
    rendered = render.render_reports(analysis)
    markdown = rendered["md"].decode()
    section = markdown[markdown.index("### Serving"):markdown.index("### Same model")]
    assert "**SingleStream**" in section and "**Offline**" in section and "**Server**" in section
    assert "INVALID: ran " in section and "LoadGen's minimum duration is 10 s" in section
    assert "– (200 queries; p99 needs at least 662)" in section
    assert "- ❌ torch: the served answers differ from the predict job's" in section
    assert "| torch (fault: previous-answer) |" in section and "FAIL: answers differ from predict" in section
    assert "torch's served answers are wrong" in markdown[:markdown.index("### Results")]
    html = rendered["html"].decode()
    for chart in ("SingleStream latency per backend", "Offline images per second by batch size",
                  "Server p99 latency by offered rate"):
        assert f'alt="{chart}" src="data:image/png;base64,' in html
    assert '<a href="#serving">Serving</a>' in html


def test_a_run_analysed_before_serving_existed_has_no_serving_section(tmp_path):
    _, _, analysis = analysed(tmp_path, backends=("jax",), serve_queries=0)
    assert analysis.serving["available"] is False
    assert "serves nothing (its profile sets serve_seconds to 0)" in analysis.serving["reason"]
    older = dataclasses.replace(analysis, serving=None)
    assert "### Serving" not in render.render_reports(older)["md"].decode()
    assert "serving" not in older.to_json()


def test_tied_servers_are_called_tied():
    """Server peaks are brackets [highest passing rate, lowest failing rate): overlapping brackets tie."""
    from harness.scoring.serving import server_ranking

    def row(peak, failed):
        return {"server": {"peak_rate": peak, "failed_rate": failed}}
    assert server_ranking({"a": row(100.0, 150.0), "b": row(120.0, 180.0)}).startswith(
        "b and a are tied for the highest Server rate within the latency bound")
    assert server_ranking({"a": row(100.0, 110.0), "b": row(120.0, 180.0)}) == (
        "b has the highest Server rate within the latency bound: its peak (120.0-180.0 queries/s) lies above "
        "a's (100.0-110.0)")


def test_a_serve_result_without_its_scenarios_is_a_problem_named_with_the_fix(tmp_path):
    import json

    store = RunStore.at(write_run(tmp_path, RunSpec(backends=("tensorflow", "jax"))))
    path = store.file("jax", layout.result_name("serve"))
    result = json.loads(path.read_text())
    del result["server"]
    path.write_text(json.dumps(result))
    backends, statuses, skipped = finished_run(store)
    section = analyse_run(store, backends, statuses, skipped).serving
    assert set(section["backends"]) == {"tensorflow"}
    assert section["problems"]["jax"] == ("jax's serve.json holds no SingleStream latencies, Offline or Server "
                                          "figures; run it again (--rerun jax/serve)")
