"""A wrong server on a real backend: the serve job's audit catches it, its case fails, the report says so.

One real PyTorch run on tiny data (train, predict, fidelity, serve; no speed
phase), then its serve job run again (``--rerun torch/serve``) with
``KBENCH_FAULT`` making it answer from a cache (the first answer for each
batch size, every time) or one query late (each query gets the one before
it's). Both are fast and wrong; the audit compares the kept answers with the
predict job's probabilities for the same images and weights.
"""
from __future__ import annotations

import dataclasses

import pytest

from harness import options, phases
from harness.session import BenchmarkRun
from harness.verdicts import FAILED, PASSED, judge
from harness.workload import faults, layout
from tests.conftest import work_dir, write_image_folder
from tests.test_workload_backends import TINY

pytestmark = pytest.mark.slow

BACKEND = "torch"
SERVING = dataclasses.replace(TINY, name="tiny-serve", speed_steps=0)


def session(root, rerun: str | None = None) -> BenchmarkRun:
    config = options.build_run(root / "shared", backend=BACKEND, dataset=str(root / "data"),
                               shared_dir=root / "shared", run_id="served", work_dir=work_dir(),
                               reports_dir=root / "reports", parallel=1, threads=1, baselines=None)
    return BenchmarkRun(dataclasses.replace(config, profile=SERVING,
                                            rerun=phases.parse_rerun(rerun, [BACKEND])), say=lambda line: None)


def served(run: BenchmarkRun):
    run.start()
    try:
        if BACKEND in run.skipped:
            pytest.skip(run.skipped[BACKEND])
        run.finish()
        verdict = judge(run, "serve", BACKEND)
        run.end_run()
    finally:
        run.close()
    return verdict


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    write_image_folder(root / "data")
    honest = served(session(root))
    return root, honest


def test_an_honest_server_passes_its_audit(trained):
    _, honest = trained
    assert honest.outcome == PASSED, honest.message
    assert honest.figures["serve"]["audit"]["passed"] is True


@pytest.mark.parametrize("fault", ["cached-answer", "previous-answer"])
def test_a_server_answering_from_a_cache_or_one_query_late_fails_its_serve_case(trained, fault, monkeypatch):
    root, _ = trained
    monkeypatch.setenv(faults.VARIABLE, f"{BACKEND}/serve:{fault}")
    run = session(root, rerun=f"{BACKEND}/serve")
    verdict = served(run)
    assert verdict.outcome == FAILED
    assert verdict.message.startswith(f"{BACKEND}/serve: the served answers differ from the predict job's for the "
                                      "same images and weights")
    assert run.store.read_result(BACKEND, "serve")["fault"] == fault
    section = run.store.read_analysis().serving
    assert list(section["audit_failed"]) == [BACKEND]
    assert all("left out" in text or "no backend is ranked" in text for text in section["ranking"].values())
    report = (run.store.path / layout.REPORT_MD).read_text()
    assert f"- ❌ {BACKEND}: the served answers differ" in report and f"{BACKEND}'s served answers are wrong" in report
