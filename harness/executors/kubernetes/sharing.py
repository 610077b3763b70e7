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

The data set the harness copies in (``inputs/``) is read, never written, by
the pods: it is made readable by everyone once copied (``copy2`` keeps a
source's mode such as 0600), and the probe reads it as the jobs' user.

The probe then proves it from the other side: one short Job, run as the jobs'
uid and gid with the same volume, reads a file the harness wrote in each of
those folders (so the pods see the harness's folder: ``--shared-dir`` is the
volume's mount), writes one back (so they may write there) and reads the
staged data set, before any benchmark job is submitted.

The probe, not the folders' owners, decides. An export with ``all_squash``
maps the harness's and the pods' writes alike to its anonymous uid, so the
harness cannot hand a folder to the jobs' group (it is not a member as the
server sees it) although the pods can write there; a user in more than 16
groups is a member of fewer on an NFS server that trusts AUTH_SYS (sec=sys
sends 16). So a folder the harness cannot hand over is only an error if the
probe then fails, and the error says which of these it looks like.
"""
from __future__ import annotations

import os
import shutil
import stat
import threading
from pathlib import Path

from harness.errors import ExecutorError
from harness.run_store import RunStore
from harness.workload import layout

HARNESS_PROBE = ".kbench-probe-harness"
POD_PROBE = ".kbench-probe-pod"
SHARED_MODE = 0o2775
"""rwxrwsr-x: the group may create and replace files; new entries inherit the group."""
AUTH_SYS_GROUPS = 16
"""Supplementary groups an NFS client sends with AUTH_SYS (sec=sys); a server without --manage-gids sees no more."""
NOBODY = (65534, 4294967294)

_PROBE_TEMPLATE = """\
import os, sys
token = sys.argv[1]
args = sys.argv[2:]
folders = args[:args.index('--read')] if '--read' in args else args
inputs = args[args.index('--read') + 1:] if '--read' in args else []
for folder in folders:
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
def unreadable(path):
    if os.path.isdir(path):
        if not os.access(path, os.R_OK | os.X_OK):
            return path
        for root, dirs, files in os.walk(path):
            for name in dirs:
                if not os.access(os.path.join(root, name), os.R_OK | os.X_OK):
                    return os.path.join(root, name)
            for name in files:
                if not os.access(os.path.join(root, name), os.R_OK):
                    return os.path.join(root, name)
        return None
    try:
        with open(path, 'rb') as handle:
            handle.read(1)
    except (IOError, OSError):
        return path
    return None
for path in inputs:
    bad = unreadable(path)
    if bad:
        print('@ERROR@uid %d gid %d cannot read the data set: %s (its mode or owner)' % (os.getuid(), os.getgid(), bad))
        sys.exit(6)
print('kbench probe: uid %d gid %d can read and write %d folders and read %d inputs'
      % (os.getuid(), os.getgid(), len(folders), len(inputs)))
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


class NotShared(ExecutorError):
    """The harness could not give a folder to the jobs' group; only an error if the probe then fails too."""


def share_folder(path: Path, uid: int, gid: int) -> None:
    """Create ``path`` if needed and make sure the jobs' uid/gid can write in it (the shared-group model).

    Raises ``ExecutorError`` when the folder cannot be created, and
    ``NotShared`` (saying what it looks like and the fix) when it cannot be
    handed to the group: the write probe then decides.
    """
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
        raise NotShared(
            f"the jobs (uid {uid}, gid {gid}) could not write in {path}, owned by uid {info.st_uid} with mode "
            f"{stat.S_IMODE(info.st_mode):o}, and the harness cannot give it to group {gid} ({err.strerror}): "
            f"{ownership_hint(info, uid, gid)} (docs/kubernetes.md, 'Who owns what')") from None


def groups_sent_by_auth_sys() -> set[int]:
    """The groups an NFS server that trusts AUTH_SYS sees for this process: its gid and 16 supplementary ones.

    The Linux client sends the process's supplementary groups in the kernel's
    (ascending) order and cuts the list at 16.
    """
    return {os.getegid(), *sorted(os.getgroups())[:AUTH_SYS_GROUPS]}


def ownership_hint(info: os.stat_result, uid: int, gid: int) -> str:
    """What a folder the harness may not hand over most likely means here, and what to do."""
    me = os.geteuid()
    groups = os.getgroups()
    if gid in groups and gid not in groups_sent_by_auth_sys():
        return (f"this user is in {len(groups)} groups, and NFS with AUTH_SYS (sec=sys) sends only "
                f"{AUTH_SYS_GROUPS} of them, without group {gid}: make it the primary group for the run (sg {gid} "
                f"-c 'pytest ...', or newgrp {gid}), or ask the NFS admin for rpc.mountd --manage-gids")
    if me == 0 and info.st_uid in NOBODY:
        return (f"root's writes arrive as nobody (root_squash): run the harness as uid {uid} or as a member of "
                f"group {gid}, not as root")
    if me != 0 and info.st_uid != me:
        return (f"this machine's writes arrive as uid {info.st_uid}, not as uid {me} (an all_squash export with "
                f"anonuid={info.st_uid}?): pods squashed alike can write there, so the write probe decides; if it "
                f"fails, pass --k8s-uid {info.st_uid} --k8s-gid {info.st_gid}, or export with anonuid={uid} "
                f"anongid={gid}")
    return (f"run the harness as uid {uid} or as a member of group {gid} (not as root on a root_squash export), "
            "or pass the --k8s-uid/--k8s-gid that own the export")


def stage_input(source: Path, target: Path) -> bool:
    """Copy a data set into the shared folder (once), readable by everyone; True if it was copied now."""
    copied = False
    if not target.exists():
        _copy_atomically(source, target)
        copied = True
    make_readable(target, stop=target.parent.parent.parent)
    return copied


def make_readable(path: Path, stop: Path) -> None:
    """Let every user read ``path`` (files a+r, folders a+rx), and traverse its parents up to ``stop``.

    ``shutil.copy2`` keeps the source's mode (0600 is common for a
    download); the pods read the data set as another user. What the harness
    does not own stays as it is, and the write probe says so if the pods
    cannot read it.
    """
    def widen(item: Path, bits: int) -> None:
        try:
            mode = stat.S_IMODE(item.stat().st_mode)
            if mode & bits != bits:
                os.chmod(item, mode | bits)
        except OSError:
            pass

    if path.is_dir():
        for root, dirs, files in os.walk(path):
            widen(Path(root), 0o555)
            for name in files:
                widen(Path(root, name), 0o444)
    else:
        widen(path, 0o444)
    parent = path.parent
    while parent != stop and stop in parent.parents:
        widen(parent, 0o555)
        parent = parent.parent


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy a file or folder to ``target`` (inside its own new folder) so that it appears complete or not at all."""
    folder = target.parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{folder.name}.partial-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        if source.is_dir():
            shutil.copytree(source, staging / target.name)
        else:
            shutil.copy2(source, staging / target.name)
        try:
            os.rename(staging, folder)
        except OSError:
            if not target.exists():  # not a race with another harness that staged it first
                raise
    except OSError as err:
        raise ExecutorError(f"cannot copy the data set {source} into the shared folder ({err}); check that "
                            f"{folder.parent} is writable") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def probe_folders(store: RunStore, backends: list[str]) -> list[Path]:
    """Every folder both the harness and the pods write in, for one run (its store's folders and the cache)."""
    return [store.path.parent, store.path, *(store.backend_dir(b) for b in backends),
            Path(layout.cache_dir(str(store.shared)))]


def probe_command(token: str, folders: list[Path], inputs: list[Path], shared: Path, mount_path: str) -> list[str]:
    """The probe's container command: write in each folder, read each staged input, as the pods see them."""
    command = ["python", "-c", PROBE_SCRIPT, token, *(in_container(f, shared, mount_path) for f in folders)]
    if inputs:
        command += ["--read", *(in_container(i, shared, mount_path) for i in inputs)]
    return command


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
