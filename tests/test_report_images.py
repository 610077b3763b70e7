"""``harness.report.thumbnails``: the report's pictures come from the run's own images, or not at all."""
from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.report import thumbnails
from harness.run_end import reanalyse
from harness.scoring.record import RunAnalysis
from harness.workload import data
from harness.workload.data import subset_indices
from tests.run_fixtures import (
    CACHE_KEY,
    RunSpec,
    fingerprint,
    source_labels,
    write_cache,
    write_run,
)


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, RunSpec, RunAnalysis]:
    spec = RunSpec()
    folder = write_run(tmp_path, spec)
    write_cache(tmp_path, spec)
    return tmp_path, spec, reanalyse(folder)


def test_the_fingerprint_is_the_workloads(run) -> None:
    shared, spec, analysis = run
    folder = thumbnails.cache_folder(shared, CACHE_KEY)
    meta = json.loads((folder / "meta.json").read_text())
    arrays = data.Arrays({s: np.load(folder / f"x_{s}.npy") for s in ("train", "test")},
                         source_labels(spec), meta["classes"], CACHE_KEY, meta["content_sha256"])
    profile = analysis.settings["profile"]
    assert data.prepare(arrays, profile, splits=()).fingerprint == fingerprint(spec) == analysis.fingerprint


def test_pictures_are_the_runs_test_images(run) -> None:
    shared, spec, analysis = run
    found = thumbnails.load(analysis, shared)
    assert found.unavailable is None
    assert sorted(found.images) == thumbnails.wanted_positions(analysis)
    rows = subset_indices(source_labels(spec), spec.n_train, spec.n_val, spec.n_test, spec.seed)["test"]
    pixels = np.load(thumbnails.cache_folder(shared, CACHE_KEY) / "x_test.npy")
    for position, png in found.images.items():
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), pixels[rows[position]])


def test_a_cache_of_other_images_is_not_used(run) -> None:
    shared, _, analysis = run
    meta_path = thumbnails.cache_folder(shared, CACHE_KEY) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["content_sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    found = thumbnails.load(analysis, shared)
    assert found.images == {} and "holds other images than this run used" in found.unavailable


def test_a_missing_or_broken_cache_gives_a_reason(run, tmp_path: Path) -> None:
    shared, _, analysis = run
    assert "is not on this machine" in thumbnails.load(analysis, tmp_path / "elsewhere").unavailable
    (thumbnails.cache_folder(shared, CACHE_KEY) / "y_test.npy").write_bytes(b"not numpy")
    assert "could not be read" in thumbnails.load(analysis, shared).unavailable
    no_key = dataclasses.replace(analysis, data={})
    assert "does not name its data cache" in thumbnails.load(no_key, shared).unavailable


def test_no_ensemble_needs_no_pictures(run) -> None:
    shared, _, analysis = run
    assert thumbnails.load(dataclasses.replace(analysis, table=None, rescue=None), shared) == thumbnails.Thumbnails()
