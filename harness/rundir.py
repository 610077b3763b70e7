"""The run folder seen from the harness: run ids, the run lock, run.json, result files.

File names and atomic writes come from ``harness.workload.layout`` (the jobs
use the same module). Here: deciding whether a result can be trusted, and
keeping two harness processes off the same run.
"""
from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import secrets
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np

from harness import job_outputs, names
from harness.errors import ConfigError, ResultError, RunInUseError
from harness.jobs import JobResult, JobState
from harness.workload import layout

RUN_ID_PATTERN = names.SAFE_NAME
IDENTITY_KEYS = ("profile", "dataset", "model")
"""run.json keys that must match for a later session to resume a run."""
TIMING_ONLY = ("speed_steps", "speed_predict_batches")
"""Profile fields that change only how the speed phase times a backend, not what any job
computes: a later session may change them (its speed jobs then run again)."""


def _identity(key: str, value: Any) -> Any:
    """What must match on resume: a profile but for its timing-only fields; a model is its file's
    content (a run from before models has the seed's)."""
    if key == "profile" and isinstance(value, dict):  # train_seed None is a run from before repeats
        return {k: v for k, v in value.items() if k not in TIMING_ONLY and not (k == "train_seed" and v is None)}
    if key == "model":
        return (value or {}).get("sha256") or _seed_sha256()
    return value


def _seed_sha256() -> str:
    from harness.workload.model import shipped_path

    return layout.sha256_file(shipped_path(layout.DEFAULT_MODEL))


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now()
    return now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def check_run_id(text: str) -> str:
    """A run id becomes a folder name and part of Kubernetes names: keep it plain."""
    return names.check(text, "run id", "nightly-42")


class RunFolder:
    """One run's folder on the shared storage."""

    def __init__(self, shared: Path, run_id: str):
        self.shared = Path(shared)
        self.run_id = check_run_id(run_id)
        self.path = Path(layout.run_dir(str(self.shared), run_id))
        self._lock_handle = None

    # -- paths ---------------------------------------------------------------------
    def backend_dir(self, backend: str) -> Path:
        return self.path / backend

    def file(self, backend: str, name: str) -> Path:
        return self.backend_dir(backend) / name

    # -- exclusive use -------------------------------------------------------------
    def acquire(self) -> None:
        """Hold the run for this process; a second harness on the same run is refused."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / layout.RUN_LOCK, "a+")  # noqa: SIM115 (held open: it is the lock)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunInUseError(
                f"run {self.run_id} is in use by {holder}; wait for it to finish (then run again with "
                f"the same --run-id to resume it) or choose another --run-id") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{dt.datetime.now().isoformat(timespec='seconds')}\n")
        handle.flush()
        self._lock_handle = handle

    def release(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle.fileno(), fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    # -- run.json --------------------------------------------------------------------
    def read_settings(self) -> dict | None:
        path = self.path / layout.RUN_JSON
        if not path.exists():
            return None
        data = read_json(path)
        check_schema(data, path)
        return data

    def write_settings(self, settings: dict[str, Any]) -> dict:
        """Write run.json, or check a resumed run was asked for with the same settings."""
        existing = self.read_settings()
        if existing is not None:
            for key in IDENTITY_KEYS:
                if _identity(key, existing.get(key)) != _identity(key, settings.get(key)):
                    raise ConfigError(
                        f"run {self.run_id} was started with a different {key} "
                        f"({_short(existing.get(key))}, now {_short(settings.get(key))}); resume it with "
                        "the same settings or choose a new --run-id")
            merged = dict(existing)
            merged["backends"] = sorted(set(existing.get("backends", [])) | set(settings.get("backends", [])))
            merged["resumed_at"] = settings.get("created_at")
            if isinstance(merged.get("profile"), dict) and isinstance(settings.get("profile"), dict):
                merged["profile"] = dict(merged["profile"], **{k: settings["profile"][k] for k in TIMING_ONLY
                                                               if k in settings["profile"]})
            settings = merged
        self.path.mkdir(parents=True, exist_ok=True)
        layout.atomic_write_json(str(self.path / layout.RUN_JSON), settings)
        return settings

    # -- job status and results -----------------------------------------------------------
    def write_status(self, result: JobResult) -> None:
        folder = self.backend_dir(result.backend)
        folder.mkdir(parents=True, exist_ok=True)
        layout.atomic_write_json(str(folder / layout.status_name(result.phase)), result.to_json())

    def read_status(self, backend: str, phase: str) -> JobResult | None:
        path = self.file(backend, layout.status_name(phase))
        if not path.exists():
            return None
        try:
            return JobResult.from_json(read_json(path))
        except (ResultError, KeyError, TypeError, ValueError):
            return None

    def read_result(self, backend: str, phase: str) -> dict:
        path = self.file(backend, layout.result_name(phase))
        data = read_json(path)
        check_schema(data, path)
        if data.get("kind") != phase or data.get("backend") != backend:
            raise ResultError(f"{path} holds a {data.get('kind')} result of {data.get('backend')}; "
                              "delete it and run again")
        return data

    def finished(self, backend: str, phase: str, fingerprint: str | None = None) -> JobResult | None:
        """The earlier result of a job when it can be reused as it is, else None."""
        return self.earlier(backend, phase, fingerprint)[0]

    def earlier(self, backend: str, phase: str,
                fingerprint: str | None = None) -> tuple[JobResult | None, str | None]:
        """An earlier job's status if it can be reused, else None and why not (None: it never finished).

        Reusable means: it succeeded, its result file is sound, and every file it
        promised still matches the checksum it wrote (and, for predict, holds
        sound probabilities). Anything less reruns the job.
        """
        status = self.read_status(backend, phase)
        if status is None or status.state is not JobState.SUCCEEDED:
            return None, None
        try:
            result = self.read_result(backend, phase)
        except ResultError as err:
            return None, str(err)
        if fingerprint and result.get("data", {}).get("fingerprint") != fingerprint:
            return None, "it saw other data (its data fingerprint differs)"
        folder = self.backend_dir(backend)
        problem = job_outputs.outputs_problem(folder, result) if phase == "predict" else None
        problem = problem or job_outputs.checksum_problem(folder, result, phase)
        if problem:
            return None, problem
        status.reused = True
        return status, None

    def clear_phase(self, backend: str, phase: str) -> None:
        """Remove what an unfinished attempt of a job left, so it restarts clean."""
        folder = self.backend_dir(backend)
        folder.mkdir(parents=True, exist_ok=True)
        layout.remove_stale_temporaries(str(folder))
        names = [layout.result_name(phase), layout.status_name(phase), layout.events_name(phase)]
        if phase == "train":
            names += [layout.WEIGHTS, layout.result_name("predict"), layout.status_name("predict"),
                      layout.result_name("fidelity"), layout.status_name("fidelity")]
        if phase == "train" or phase == "fidelity":
            names += [layout.FIDELITY_PROBS, layout.STEP_GRADS]
        if phase == "predict" or phase == "train":
            names += [layout.probs_name(s) for s in ("test", "val")]
            names += [layout.labels_name(s) for s in ("test", "val")]
        for name in names:
            try:
                (folder / name).unlink()
            except FileNotFoundError:
                pass
        log = folder / layout.log_name(phase)
        if log.exists():
            shutil.move(str(log), str(log) + ".previous")


def result_file_problem(path: Path) -> str | None:
    """Why a job's result file cannot be trusted (missing, corrupt, other schema), or None."""
    try:
        data = read_json(path)
        check_schema(data, path)
    except ResultError as err:
        return str(err)
    return None


def read_json(path: Path) -> dict:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ResultError(f"{path} is missing; run the job that writes it") from None
    except OSError as err:
        raise ResultError(f"cannot read {path} ({err.strerror})") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ResultError(f"{path} is truncated or corrupt ({err.msg} at line {err.lineno}); delete it "
                          "and run the job again") from None
    if not isinstance(data, dict):
        raise ResultError(f"{path} does not hold a JSON object; delete it and run the job again")
    return data


def check_schema(data: dict, path: Path) -> None:
    found = data.get("schema")
    if found != layout.SCHEMA_VERSION:
        raise ResultError(f"{path} has schema version {found!r} but this harness reads version "
                          f"{layout.SCHEMA_VERSION}; re-run that job with this harness (or use the harness "
                          "version that wrote it)")


def load_array(path: Path) -> np.ndarray:
    try:
        return job_outputs.load_npy(Path(path))
    except ValueError as err:
        raise ResultError(f"{err}; run the predict job again") from None


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) < 120 else text[:117] + "..."
