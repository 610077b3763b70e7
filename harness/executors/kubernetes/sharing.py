"""Who may write where on the shared volume: the ownership model, and the probe that proves it.

The harness and the pods write into the same run folder: the harness its
run.json, status files and the pods' logs; the pods their results. They are
different users (the pods run as ``--k8s-uid``/``--k8s-gid``, never root), and
NFS keeps numeric owners: ``fsGroup`` does not change ownership on NFS volumes,
and with ``root_squash`` a harness running as root writes as ``nobody``.

The model: a **shared group**. Every folder both sides write in
(``runs/``, ``runs/<run>/``, ``runs/<run>/<backend>/`` and ``cache/``) belongs
to the jobs' gid, is group-writable and carries the setgid bit, so what
either side creates inside stays in that group. The harness arranges this
before any job starts (it must own the folders, or run as the jobs' uid, and
be a member of the jobs' group on its machine); a folder it cannot give to
the group is an error that says how to fix it. The workload writes its files
group-writable (``layout.atomic_write_*``), so the harness can replace them.

The probe then proves it from the other side: one short Job, run as the jobs'
uid and gid with the same volume, reads a file the harness wrote in each of
those folders (so the pods see the harness's folder: ``--shared-dir`` is the
volume's mount) and writes one back (so they may write there), before any
benchmark job is submitted.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from harness.errors import ExecutorError
from harness.workload import layout

HARNESS_PROBE = ".kbench-probe-harness"
POD_PROBE = ".kbench-probe-pod"
SHARED_MODE = 0o2775
"""rwxrwsr-x: the group may create and replace files; new entries inherit the group."""

_PROBE_TEMPLATE = """\
import os, sys
token = sys.argv[1]
for folder in sys.argv[2:]:
    try:
        with open(os.path.join(folder, '@HARNESS_PROBE@')) as handle:
            seen = handle.read()
    except (IOError, OSError) as err:
        print('@ERROR@the pod does not see the file the harness wrote in %s (%s)' % (folder, err))
        sys.exit(4)
    if seen != token:
        print('@ERROR@%s holds another run\\'s probe: is --shared-dir the mount of this volume?' % folder)
        sys.exit(4)
    try:
        with open(os.path.join(folder, '@POD_PROBE@'), 'w') as handle:
            handle.write(token)
    except (IOError, OSError) as err:
        print('@ERROR@uid %d gid %d cannot write in %s (%s)' % (os.getuid(), os.getgid(), folder, err))
        sys.exit(5)
print('kbench probe: uid %d gid %d can read and write %d folders' % (os.getuid(), os.getgid(), len(sys.argv) - 2))
"""
PROBE_SCRIPT = (_PROBE_TEMPLATE.replace("@ERROR@", layout.ERROR_PREFIX)
                .replace("@HARNESS_PROBE@", HARNESS_PROBE).replace("@POD_PROBE@", POD_PROBE))
"""Runs inside the job image as the jobs' user; Python 3.6 syntax, standard library only."""


def writable_by(info: os.stat_result, uid: int, gid: int) -> bool:
    """Whether a folder with this owner and mode lets ``uid``/``gid`` create files in it (no ACLs)."""
    mode = info.st_mode
    if info.st_uid == uid:
        return mode & 0o300 == 0o300
    if info.st_gid == gid:
        return mode & 0o030 == 0o030
    return mode & 0o003 == 0o003


def share_folder(path: Path, uid: int, gid: int) -> None:
    """Create ``path`` if needed and make sure the jobs' uid/gid can write in it (the shared-group model)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        info = path.stat()
    except OSError as err:
        raise ExecutorError(f"cannot create {path} ({err.strerror}); --shared-dir must be writable here") from None
    if writable_by(info, uid, gid):
        return
    try:
        if info.st_gid != gid:
            os.chown(path, -1, gid)
        os.chmod(path, stat.S_IMODE(info.st_mode) | SHARED_MODE)
    except OSError as err:
        owner = f"uid {info.st_uid}" + (" (nobody: root squash?)" if info.st_uid in (65534, 4294967294) else "")
        raise ExecutorError(
            f"the jobs (uid {uid}, gid {gid}) could not write in {path}, owned by {owner} with mode "
            f"{stat.S_IMODE(info.st_mode):o}, and the harness cannot give it to group {gid} ({err.strerror}); run "
            f"the harness as uid {uid} or as a member of group {gid} (not as root on a root_squash export), or "
            f"pass the --k8s-uid/--k8s-gid that own the export (docs/kubernetes.md, 'Who owns what')") from None


def probe_folders(shared: Path, run_id: str, backends: list[str]) -> list[Path]:
    """Every folder both the harness and the pods write in, for one run."""
    runs = shared / "runs"
    return [runs, runs / run_id, *(runs / run_id / b for b in backends), shared / "cache"]


def in_container(path: Path, shared: Path, mount_path: str) -> str:
    """Where a folder under the shared folder is inside the pods."""
    return str(Path(mount_path) / path.relative_to(shared))


def write_harness_probes(folders: list[Path], token: str) -> None:
    for folder in folders:
        (folder / POD_PROBE).unlink(missing_ok=True)
        (folder / HARNESS_PROBE).write_text(token, encoding="utf-8")


def unanswered(folders: list[Path], token: str) -> list[Path]:
    """The folders where the pod's answer is missing or wrong."""
    missing = []
    for folder in folders:
        try:
            os.listdir(folder)  # make an NFS client revalidate its cached entries
            if (folder / POD_PROBE).read_text(encoding="utf-8") == token:
                continue
        except OSError:
            pass
        missing.append(folder)
    return missing


def remove_probes(folders: list[Path]) -> None:
    for folder in folders:
        for name in (HARNESS_PROBE, POD_PROBE):
            try:
                (folder / name).unlink()
            except OSError:
                pass
