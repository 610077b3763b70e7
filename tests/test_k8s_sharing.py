"""Who may write where on the shared volume (issue 13 item 1): the shared-group model, checked on real folders.

NFS keeps numeric owners and modes, and ``fsGroup`` does not change them
(Kubernetes docs, "Configure a Security Context for a Pod or Container":
fsGroup ownership management applies only to volume types that support it,
which NFS does not). So the run folder must be writable by the jobs' uid or
gid as the server stores it; these tests check that rule on real folders.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from harness.errors import ExecutorError
from harness.executors.kubernetes import sharing


def stat_of(uid: int, gid: int, mode: int) -> os.stat_result:
    return os.stat_result((stat.S_IFDIR | mode, 0, 0, 2, uid, gid, 4096, 0, 0, 0))


@pytest.mark.parametrize(("uid", "gid", "mode", "writable"), [
    (1000, 0, 0o755, True),     # the jobs' own folder
    (0, 0, 0o755, False),       # made by root (or nobody, under root_squash): the usual failure
    (65534, 65534, 0o755, False),
    (0, 1000, 0o2775, True),    # the shared-group model
    (0, 1000, 0o2755, False),   # the jobs' group without group write
    (0, 0, 0o777, True),        # open to everyone
    (1000, 1000, 0o555, False),  # read-only even for its owner
])
def test_a_folder_is_writable_by_the_jobs_as_its_owner_and_mode_say(uid, gid, mode, writable):
    assert sharing.writable_by(stat_of(uid, gid, mode), 1000, 1000) is writable


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a folder to another group")
def test_a_folder_the_jobs_cannot_write_is_given_to_their_group_with_setgid(tmp_path: Path):
    folder = tmp_path / "runs" / "r1" / "tensorflow"
    folder.mkdir(parents=True, mode=0o755)
    sharing.share_folder(folder, 1000, 1234)

    info = folder.stat()
    assert info.st_gid == 1234 and stat.S_IMODE(info.st_mode) & 0o2070 == 0o2070
    assert sharing.writable_by(info, 1000, 1234)


def test_a_folder_the_harness_cannot_give_away_is_an_error_naming_the_fix(tmp_path: Path, monkeypatch):
    """Root on a root_squash export writes as nobody and may not chown: the error says what to do instead."""
    folder = tmp_path / "runs"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)

    def refused(*_args, **_kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sharing.os, "chown", refused)
    monkeypatch.setattr(sharing.os, "chmod", refused)
    owner = folder.stat().st_uid
    uid = 1000 if owner != 1000 else 1001
    with pytest.raises(ExecutorError, match=rf"the jobs \(uid {uid}, gid 4321\) could not write in {folder}.*"
                                            rf"run the harness as uid {uid} or as a member of group 4321.*root_squash"):
        sharing.share_folder(folder, uid, 4321)


def test_the_probe_script_is_python_36_syntax():
    """It runs in the legacy image (Python 3.6) as well as the Keras 3 one."""
    import ast

    ast.parse(sharing.PROBE_SCRIPT, feature_version=(3, 6))
