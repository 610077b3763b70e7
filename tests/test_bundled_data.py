"""The CIFAR-10 sample the harness ships: what it holds, where it came from, and when ``auto`` takes it."""
from __future__ import annotations

import hashlib
import importlib.util
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from harness import (
    baselines,
    bundled_data,
    dataset_choice,
    keras_dataset,
    options,
    preflight,
    profiles,
)
from harness.errors import DataError
from tests.conftest import REPO

SHARED_DATA = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def test_the_sample_is_what_its_record_says():
    record = bundled_data.check()  # the archive matches its recorded SHA-256
    assert record["sha256"] == hashlib.sha256(bundled_data.SAMPLE.read_bytes()).hexdigest()
    assert record["bytes"] == bundled_data.SAMPLE.stat().st_size < 4_000_000, "a few MB at most"
    with tarfile.open(bundled_data.SAMPLE) as archive:
        names = [m.name for m in archive.getmembers() if m.isfile()]
    per_group = Counter(tuple(name.split("/")[:2]) for name in names)
    assert {split for split, _ in per_group} == {"train", "test"}
    assert sorted({label for _, label in per_group}) == record["classes"] and len(record["classes"]) == 10
    for (split, _), count in per_group.items():  # stratified: the same number of every class
        assert count == record["drawn"]["per_class"][split]
    assert Counter(split for split, _ in (tuple(n.split("/")[:2]) for n in names)) == record["images"]
    assert bundled_data.describe() == "bundled sample, 8,000 images: pipeline check, not a benchmark of accuracy"


@pytest.mark.slow  # reads the whole 20 MB source archive twice
def test_the_sample_is_made_again_byte_for_byte_from_its_source(tmp_path):
    """The record names its source and how it was drawn; running the script on that source reproduces it."""
    if not SHARED_DATA.exists():
        pytest.skip(f"the source archive {SHARED_DATA} is not on this machine")
    spec = importlib.util.spec_from_file_location("make_sample", REPO / "benchmarks" / "make_cifar10_sample.py")
    make_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_sample)
    data, provenance = make_sample.build(SHARED_DATA)
    assert data == bundled_data.SAMPLE.read_bytes()
    assert provenance == bundled_data.provenance()
    assert hashlib.sha256(SHARED_DATA.read_bytes()).hexdigest() == provenance["source"]["archive_sha256"]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """A machine with no Keras cache and no route to CIFAR-10's origin (a stand-in for a closed network)."""
    monkeypatch.setattr(keras_dataset, "keras_homes", lambda: [tmp_path / "no-keras-home"])
    monkeypatch.setattr(keras_dataset, "origin_reachable", lambda *a, **k: "Network is unreachable")
    monkeypatch.delenv("KBENCH_DATASET", raising=False)


def test_auto_takes_the_sample_offline_and_says_why(offline, tmp_path):
    chosen = dataset_choice.parse(None, tmp_path, tmp_path / "shared")
    assert chosen["kind"] == "path" and Path(chosen["path"]) == bundled_data.SAMPLE
    assert chosen["bundled"] == bundled_data.describe()
    assert chosen["chosen"].startswith("--dataset auto: --dataset keras needs the CIFAR-10 download")


def test_auto_takes_cifar10_through_keras_when_its_download_is_cached(keras_download_cached, tmp_path):
    assert dataset_choice.parse("auto", tmp_path, tmp_path / "shared") == {"kind": "keras"}
    assert dataset_choice.parse(None, tmp_path, tmp_path / "shared") == {"kind": "keras"}


def test_kbench_dataset_in_the_environment_is_the_default(monkeypatch, tmp_path):
    monkeypatch.setenv("KBENCH_DATASET", "keras")
    assert dataset_choice.parse(None, tmp_path, tmp_path) == {"kind": "keras"}


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_the_sample_fills_smoke_and_default_and_says_so_before_any_job(offline, tmp_path, profile):
    config = options.build_run(tmp_path, profile=profile, shared_dir=tmp_path / "shared", run_id="s1")
    said: list[str] = []
    shape, classes = preflight.check_dataset(config.dataset, config, said.append)
    assert (shape, classes) == ((32, 32, 3), 10)
    assert said[0].startswith("data set: bundled sample, 8,000 images: pipeline check, not a benchmark of accuracy "
                              "(--dataset auto: --dataset keras needs the CIFAR-10 download")


@pytest.mark.parametrize("profile, asked", [("standard", "every CIFAR-10 image"), ("full", "every CIFAR-10 image")])
def test_a_profile_the_sample_cannot_fill_is_refused_naming_the_fix(offline, tmp_path, profile, asked):
    config = options.build_run(tmp_path, profile=profile, shared_dir=tmp_path / "shared", run_id="s1")
    with pytest.raises(DataError) as err:
        preflight.check_dataset(config.dataset, config, lambda line: None)
    assert str(err.value).startswith(f"profile {profile} needs {asked}, but the bundled CIFAR-10 sample holds 6,000 "
                                     "training and 2,000 test images")
    assert "use --profile default or smoke with the sample, or --dataset keras (online) or --dataset PATH" in str(
        err.value)


def test_a_profile_file_asking_for_more_images_than_the_sample_is_refused(offline, tmp_path):
    bigger = profiles.PROFILES["default"].to_json() | {"name": "bigger", "n_train": 5500, "n_val": 1000}
    (tmp_path / "bigger.json").write_text(__import__("json").dumps(bigger))
    config = options.build_run(tmp_path, profile=str(tmp_path / "bigger.json"), shared_dir=tmp_path / "s", run_id="b")
    with pytest.raises(DataError, match="needs 6,500 training and 2,000 test images, but the bundled"):
        preflight.check_dataset(config.dataset, config, lambda line: None)


def test_a_baseline_recorded_on_other_data_checks_nothing_and_says_why(tmp_path):
    path = REPO / "benchmarks" / "baselines" / "default.json"
    verdict = baselines.member_verdict(path, "default", "jax", 0.4, fingerprint="f" * 64)
    assert verdict.passed is None
    assert verdict.message.startswith(f"baseline file {path} was recorded on other data (fingerprint ")
    assert "this run's ffffffffffff), so accuracy is not checked against it" in verdict.message
