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


def test_a_user_in_more_than_16_groups_is_told_what_auth_sys_sends(tmp_path: Path, monkeypatch):
    """Issue 29 item 8: ``id`` lists the jobs' group, but NFS over AUTH_SYS sends 16 supplementary groups only.

    The Linux client sends them in the kernel's ascending order; a server
    without --manage-gids then refuses the chown though the user is a member.
    Stand-ins: ``os.getgroups``/``getegid``/``geteuid`` give this process 20
    groups, and a refused ``chown`` plays the NFS server's answer.
    """
    folder = tmp_path / "runs"
    folder.mkdir(mode=0o755)

    def refused(*_args, **_kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sharing.os, "chown", refused)
    monkeypatch.setattr(sharing.os, "chmod", refused)
    monkeypatch.setattr(sharing.os, "getgroups", lambda: list(range(100, 119)) + [4321])  # 20 groups
    monkeypatch.setattr(sharing.os, "getegid", lambda: 100)
    monkeypatch.setattr(sharing.os, "geteuid", lambda: 1001)
    assert 4321 not in sharing.groups_sent_by_auth_sys() and 115 in sharing.groups_sent_by_auth_sys()
    with pytest.raises(sharing.NotShared, match=r"this user is in 20 groups, and NFS with AUTH_SYS \(sec=sys\) sends "
                                                r"only 16 of them, without group 4321: .*sg 4321"):
        sharing.share_folder(folder, 1000, 4321)


def test_writes_that_arrive_as_another_uid_are_named_as_all_squash(tmp_path: Path, monkeypatch):
    """Issue 29 item 8: not root, yet the folder the harness just made belongs to another uid: all_squash.

    Stand-in: ``os.geteuid`` says this process is another uid than the folder's owner, as a squashing server makes it.
    """
    folder = tmp_path / "runs"
    folder.mkdir(mode=0o755)
    info = folder.stat()
    monkeypatch.setattr(sharing.os, "geteuid", lambda: info.st_uid + 1)
    monkeypatch.setattr(sharing.os, "getgroups", list)
    hint = sharing.ownership_hint(info, 1000, 1000)
    assert f"this machine's writes arrive as uid {info.st_uid}" in hint and "all_squash" in hint
    assert "root squash" not in hint and "write probe decides" in hint


def test_the_probe_reads_inputs_and_writes_folders_as_the_pods_see_them(tmp_path: Path):
    """Issue 29 item 7: the probe's command lists the staged data set after --read, at the pods' paths."""
    shared = tmp_path / "shared"
    command = sharing.probe_command("t0k3n", [shared / "runs"], [shared / "inputs" / "k" / "d.tar.gz"], shared,
                                    "/mnt/kbench")
    assert command[:2] == ["python", "-c"] and command[3:] == ["t0k3n", "/mnt/kbench/runs", "--read",
                                                               "/mnt/kbench/inputs/k/d.tar.gz"]
