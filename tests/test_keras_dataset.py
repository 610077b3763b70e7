"""``--dataset keras`` offline: one line before any job starts, naming ``--dataset PATH``."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness import keras_dataset
from harness.errors import DataError
from tests.conftest import REPO


def unreachable() -> str:
    return "Name or service not known"


def test_a_decoded_shared_cache_needs_no_download(tmp_path):
    decoded = tmp_path / "cache" / "datasets" / "keras-cifar10"
    decoded.mkdir(parents=True)
    (decoded / "meta.json").write_text("{}")
    assert "already decoded" in keras_dataset.check_available(decoded, homes=[], reach=unreachable)


@pytest.mark.parametrize("name", ["cifar-10-batches-py", "cifar-10-python.tar.gz",
                                  "cifar-10-batches-py_extracted"])
def test_a_download_in_keras_cache_is_used_offline(tmp_path, name):
    (tmp_path / "home" / "datasets" / name).mkdir(parents=True)
    source = keras_dataset.check_available(tmp_path / "none", homes=[tmp_path / "home"], reach=unreachable)
    assert name in source


def test_online_without_a_cache_the_jobs_download(tmp_path):
    source = keras_dataset.check_available(tmp_path / "none", homes=[tmp_path / "home"], reach=lambda: None)
    assert keras_dataset.ORIGIN_HOST in source


def test_offline_without_a_cache_is_one_error_naming_the_fix(tmp_path):
    with pytest.raises(DataError) as err:
        keras_dataset.check_available(tmp_path / "none", homes=[tmp_path / "home"], reach=unreachable)
    message = str(err.value)
    assert "\n" not in message
    assert "--dataset PATH" in message and "Name or service not known" in message


def test_keras_home_is_searched_first(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert keras_dataset.keras_homes()[0] == tmp_path / "kh"


def offline_bench(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """``pytest benchmarks/`` in a real process with a fresh home (no Keras cache), on this machine."""
    env = {k: v for k, v in os.environ.items() if k != "KBENCH_DATASET"}
    env.update(HOME=str(tmp_path / "home"), KERAS_HOME=str(tmp_path / "keras-home"))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", "-p", "no:cacheprovider", "--backend", "all",
         "--shared-dir", str(tmp_path / "shared"), "--run-id", "offline", "--work-dir", str(tmp_path / "work"),
         *args], check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_pytest_benchmarks_offline_with_dataset_keras_fails_once_before_any_job(tmp_path):
    """``--dataset keras`` asks for the real download and nothing else: on a machine without internet (this
    one, CI's) that is one line before any job. Skipped where the download's origin answers."""
    if keras_dataset.origin_reachable(timeout_s=2) is None:
        pytest.skip(f"{keras_dataset.ORIGIN_HOST} is reachable from this machine, so the download would work")
    shared = tmp_path / "shared"
    result = offline_bench(tmp_path, "--profile", "smoke", "--dataset", "keras")
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert output.count("--dataset keras needs the CIFAR-10 download") == 1, output
    assert "pass --dataset PATH" in output
    assert "Traceback" not in output
    assert not (shared / "runs" / "offline" / "run.json").exists(), "no run may start"
    assert not list((tmp_path / "work").glob("runtimes/*/bin/python")), "no runtime may be built"


def test_offline_a_profile_the_bundled_sample_cannot_fill_is_refused_before_any_job(tmp_path):
    """``--dataset auto`` (the default) offline takes the bundled sample; ``standard`` means all of CIFAR-10,
    which the sample is not: one line naming the fix, no run started, no runtime built."""
    if keras_dataset.origin_reachable(timeout_s=2) is None:
        pytest.skip(f"{keras_dataset.ORIGIN_HOST} is reachable from this machine, so auto would take CIFAR-10")
    result = offline_bench(tmp_path, "--profile", "standard")
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert output.count("profile standard needs every CIFAR-10 image, but the bundled CIFAR-10 sample holds "
                        "6,000 training and 2,000 test images") == 1, output
    assert "use --profile default or smoke with the sample, or --dataset keras (online)" in output
    assert "Traceback" not in output
    assert not (tmp_path / "shared" / "runs" / "offline" / "run.json").exists(), "no run may start"
    assert not list((tmp_path / "work").glob("runtimes/*/bin/python")), "no runtime may be built"
