"""A data set that changed between two sessions of a run: its results are not reused, said in one line.

The session starts on a real tiny image folder through a stand-in executor
that must never run a job (the reuse decision is made before any job), and
on synthetic finished runs (``tests.run_fixtures``). Issue 30, break 5.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import options, plan, preflight
from harness.executors.base import Executor
from harness.session import BenchmarkRun
from tests.conftest import write_image_folder
from tests.run_fixtures import RunSpec, write_run
from tests.test_resume import ALL_JOBS, BACKENDS, FIDELITY, SERVE, session_on

TINY = {"name": "tiny", "description": "tests", "n_train": 24, "n_val": 6, "n_test": 12, "epochs": 1,
        "batch_size": 8, "learning_rate": 1e-3, "predict_batch_size": 4, "job_timeout_s": 900, "seed": 3,
        "speed_steps": 0, "serve_seconds": 0}


class NoJobs(Executor):
    """Runs nothing: a stand-in for the local executor while only the run's start is under test."""

    name = "local"

    def run(self, job, on_event):
        raise AssertionError(f"{job.label} must not run in this test")


def replace_every_image(folder: Path) -> None:
    for path in folder.rglob("*.png"):
        Image.fromarray(np.full((32, 32, 3), 7, dtype=np.uint8)).save(path)


def test_the_session_compares_results_with_the_data_set_as_it_is_now(tmp_path, monkeypatch):
    """Before: the session compared no fingerprint, so results computed on the old images were reused."""
    monkeypatch.setattr("harness.session.executor_class", lambda name: NoJobs)
    compared: list[str | None] = []
    real = plan.reusable

    def reusable(*args, **kwargs):
        compared.append(kwargs.get("fingerprint"))
        return real(*args, **kwargs)

    monkeypatch.setattr(plan, "reusable", reusable)
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    images = write_image_folder(tmp_path / "images")
    config = options.build_run(tmp_path, backend="jax", profile=str(tmp_path / "tiny.json"), dataset=str(images),
                               shared_dir=tmp_path / "shared", run_id="r1", work_dir=tmp_path / "work",
                               reports_dir=tmp_path / "reports")
    for _ in range(2):
        run = BenchmarkRun(config, say=lambda line: None)
        run.start()
        run.close()
        replace_every_image(images)
    first, second = compared
    assert first and second and first != second


def test_results_computed_on_other_images_are_not_reused_said_once(tmp_path):
    write_run(tmp_path, RunSpec(backends=BACKENDS))
    run, said = session_on(tmp_path)
    done = plan.reusable(run.store, list(BACKENDS), run.phases, run.config.rerun, profile=run.config.profile,
                         fingerprint="f" * 64, say=said.append)
    assert set(done) == ALL_JOBS - {(b, p) for b in BACKENDS for p in ("train", "predict")} - FIDELITY \
        - set(SERVE.values()), "only the speed jobs, which record no data, are kept"
    [line] = [s for s in said if s.startswith("not reusing")]
    assert line.startswith("not reusing tensorflow/train, jax/train of run synthetic1: it saw other data (data "
                           "fingerprint ")
    assert line.endswith("the data set's is now ffffffffffff: its images changed since); running them again")


def test_the_data_fingerprint_follows_the_images(tmp_path):
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    images = write_image_folder(tmp_path / "images")
    config = options.build_run(tmp_path, backend="jax", profile=str(tmp_path / "tiny.json"), dataset=str(images),
                               shared_dir=tmp_path / "shared", run_id="r1")
    before = preflight.data_fingerprint(config.dataset, config)
    assert preflight.data_fingerprint(config.dataset, config) == before
    replace_every_image(images)
    assert preflight.data_fingerprint(config.dataset, config) != before
    assert preflight.data_fingerprint({"kind": "keras"}, config) is None


pytestmark = pytest.mark.usefixtures("keras_download_cached")
