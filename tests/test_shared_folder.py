"""A shared folder that is missing, read-only or full is one clear message before any job runs.

Read-only and full folders are real: small tmpfs mounts made for the test
(which needs root and mount permission; otherwise the test is skipped).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.preflight import check_shared_dir

pytest_plugins = ["pytester"]


@pytest.fixture
def tmpfs(tmp_path):
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip() or 'mount failed'}); needs root")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


def make_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def fill(path: Path) -> None:
    subprocess.run(["dd", "if=/dev/zero", f"of={path / 'filler'}", "bs=4k"], capture_output=True, check=False)


def test_a_missing_shared_folder_is_created(tmp_path):
    check_shared_dir(tmp_path / "new" / "shared")
    assert (tmp_path / "new" / "shared").is_dir()


def test_a_read_only_shared_folder_is_refused_with_the_fix(tmpfs):
    make_read_only(tmpfs)
    with pytest.raises(ConfigError, match=r"cannot write to the shared folder .* \(Read-only file system\); "
                                          r"check its permissions or pass --shared-dir"):
        check_shared_dir(tmpfs)


def test_a_full_shared_folder_is_refused_and_nothing_is_left_behind(tmpfs):
    fill(tmpfs)
    before = sorted(p.name for p in tmpfs.iterdir())
    with pytest.raises(ConfigError, match=r"\(No space left on device\); it is full; free some space"):
        check_shared_dir(tmpfs)
    assert sorted(p.name for p in tmpfs.iterdir()) == before


def test_a_session_on_a_read_only_folder_stops_before_any_job(pytester, tmpfs, image_folder):
    """The whole plugin path: a usage error, no traceback, no run folder."""
    make_read_only(tmpfs)
    pytester.makepyfile(test_cases="def test_train(backend_name, kbench):\n    kbench.job(backend_name, 'train')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--backend", "tensorflow",
                                           "--dataset", str(image_folder), "--shared-dir", str(tmpfs))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert "Read-only file system" in text and "Traceback" not in text
    assert not (tmpfs / "runs").exists()
