"""The run store: the one owner of a run folder, ``<shared>/runs/<run-id>``.

Only this package joins paths inside a run folder (the job protocol's names
come from ``harness.workload.layout``, which the jobs share). It owns:

* where every file of a run lives (``job_files`` gives an executor a job's log,
  events and result paths);
* the run lock, and ``run.json``: the settings a resumed run must keep, and
  its version with the migration of older folders;
* how a job ended (``<phase>.status.json``, with its result file's checksum) and
  its result file, read with their schema and every value the harness reads
  checked (``values.py``);
* the reuse rule's file half: a finished job may be reused only while its
  result is sound, every file it promised still matches the checksum it wrote,
  its data fingerprint and timing settings are the run's, and its phase's own
  staleness check passes (``harness.phases`` declares what each phase promises);
* reading every result and array back for gathering, and writing the derived
  files (``ensemble.json``, the reports).

Nothing here knows pytest, an executor or the report's layout.
"""
from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import names, phases
from harness.errors import ConfigError, HarnessError, ResultError, RunInUseError
from harness.jobs import JobResult, JobState
from harness.run_store import checks, values
from harness.run_store.checks import DIVERGED, read_json, result_file_problem
from harness.scoring.record import RunAnalysis, read_analysis
from harness.workload import layout

__all__ = ["DERIVED", "DIVERGED", "PREVIOUS", "JobFiles", "RunStore", "read_json", "result_file_problem"]

IDENTITY_KEYS = ("profile", "dataset", "model", "device", "runtime")
"""run.json keys that must match for a later session to resume a run (a run's figures all come from
one device and one kind of runtime)."""
DERIVED = (layout.ENSEMBLE_JSON, layout.REPORT_HTML, layout.REPORT_MD)
"""Files made from the jobs' results at the end of a session."""
PREVIOUS = ".previous"
"""Ends the name an earlier session's derived file is kept under while this session writes its own."""
REPORTS = {"html": layout.REPORT_HTML, "md": layout.REPORT_MD}
"""The report's formats and their files in the run folder."""


def _identity(key: str, value: Any) -> Any:
    """What must match on resume: a profile but for its timing-only fields; a model is its file's
    content (a run from before models has the seed's)."""
    if key == "profile" and isinstance(value, dict):  # train_seed None is a run from before repeats
        timing = phases.timing_fields()
        return {k: v for k, v in value.items() if k not in timing and not (k == "train_seed" and v is None)}
    if key == "model":
        return (value or {}).get("sha256") or _seed_sha256()
    if key == "device":  # a run from before --device, or from an executor that does not say, ran on CPUs
        return (value or {}).get("kind") or "cpu"
    if key == "runtime":
        return (value or {}).get("mode") or "managed"
    return value


def _shown(key: str, value: Any) -> Any:
    """How a mismatch names the value: the device or runtime as compared, anything else as written."""
    return _identity(key, value) if key in ("device", "runtime") else value


def _seed_sha256() -> str:
    from harness.workload.model import shipped_path

    return layout.sha256_file(shipped_path(layout.DEFAULT_MODEL))


@dataclass(frozen=True)
class JobFiles:
    """Where one job's files are: what an executor writes (the log) and reads (events, result)."""

    folder: Path
    log: Path
    events: Path
    result: Path


class RunStore:
    """One run's folder on the shared storage."""

    def __init__(self, shared: Path, run_id: str):
        self.shared = Path(shared)
        self.run_id = names.check_run_id(run_id)
        self.path = Path(layout.run_dir(str(self.shared), run_id))
        self._lock_handle = None

    # -- finding a run ----------------------------------------------------------------
    @classmethod
    def at(cls, run_dir: Path) -> RunStore:
        """The store of a run folder given by its path (``<shared>/runs/<run-id>``)."""
        run_dir = Path(run_dir).resolve()
        try:
            shared = Path(layout.shared_of(str(run_dir)))
        except ValueError as err:
            raise HarnessError(f"{err}; give the folder of a run") from None
        return cls(shared, run_dir.name)

    @classmethod
    def find(cls, text: str, shared_dir: Path) -> RunStore:
        """A run from its folder or its id (under ``<shared>/runs/``); one line naming the fix if neither."""
        path = Path(text).expanduser()
        if path.is_dir() and ((path / layout.RUN_JSON).is_file() or path.resolve().parent.name == layout.RUNS):
            return cls.at(path)
        by_id = Path(layout.run_dir(str(Path(shared_dir).expanduser()), text))
        if names.is_safe(text) and by_id.is_dir():
            return cls.at(by_id)
        raise HarnessError(f"no run folder {text!r} (looked for a folder holding {layout.RUN_JSON}, and for "
                           f"{by_id}); give the run's folder or its id with --shared-dir")

    # -- paths -------------------------------------------------------------------------
    def backend_dir(self, backend: str) -> Path:
        return self.path / backend

    def file(self, backend: str, name: str) -> Path:
        return self.backend_dir(backend) / name

    def job_files(self, backend: str, phase: str) -> JobFiles:
        folder = self.backend_dir(backend)
        return JobFiles(folder, folder / layout.log_name(phase), folder / layout.events_name(phase),
                        folder / layout.result_name(phase))

    @property
    def model_file(self) -> Path:
        """The run's copy of its model file, which every job builds."""
        return self.path / layout.MODEL_FILE

    def report_path(self, kind: str) -> Path:
        return self.path / REPORTS[kind]

    @property
    def analysis_path(self) -> Path:
        return self.path / layout.ENSEMBLE_JSON

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
    def exists(self) -> bool:
        return (self.path / layout.RUN_JSON).is_file()

    def read_settings(self) -> dict | None:
        path = self.path / layout.RUN_JSON
        if not path.exists():
            return None
        data = read_json(path)
        checks.check_schema(data, path)
        checks.check_settings(data, path)
        return data

    def write_settings(self, settings: dict[str, Any]) -> dict:
        """Write run.json, or check a resumed run was asked for with the same settings.

        The model's entry names the run folder's copy of the model file, which every job builds.
        """
        if isinstance(settings.get("model"), dict):
            settings = dict(settings, model={**settings["model"], "file": layout.MODEL_FILE})
        existing = self.read_settings()
        if existing is not None:
            for key in IDENTITY_KEYS:
                if _identity(key, existing.get(key)) != _identity(key, settings.get(key)):
                    raise ConfigError(
                        f"run {self.run_id} was started with a different {key} "
                        f"({_short(_shown(key, existing.get(key)))}, now {_short(_shown(key, settings.get(key)))}); "
                        "resume it with "
                        "the same settings or choose a new --run-id")
            merged = dict(existing)
            merged["backends"] = sorted(set(existing.get("backends", [])) | set(settings.get("backends", [])))
            merged["resumed_at"] = settings.get("created_at")
            if "timing" in settings:  # how this session times (--quiet-wait): not what any job computes
                merged["timing"] = settings["timing"]
            if isinstance(merged.get("profile"), dict) and isinstance(settings.get("profile"), dict):
                merged["profile"] = dict(merged["profile"], **{k: settings["profile"][k] for k in phases.timing_fields()
                                                               if k in settings["profile"]})
            settings = merged
        self.path.mkdir(parents=True, exist_ok=True)
        layout.atomic_write_json(str(self.path / layout.RUN_JSON), settings)
        return settings

    def write_model_file(self, source: bytes) -> None:
        layout.atomic_write_bytes(str(self.model_file), source)

    # -- job status and results -----------------------------------------------------------
    def write_status(self, result: JobResult) -> None:
        """Record how a job ended; for a job that succeeded, with the size and SHA-256 of its result file
        as it is now (the arrays' checksums are in the result itself: the job writes them)."""
        folder = self.backend_dir(result.backend)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / layout.result_name(result.phase)
        if result.ok and path.is_file():
            result.result_file = layout.file_records(str(folder), [path.name])[path.name]
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
        checks.check_schema(data, path)
        if data.get("kind") != phase or data.get("backend") != backend:
            raise ResultError(f"{path} holds a {data.get('kind')} result of {data.get('backend')}; "
                              "delete it and run again")
        problem = values.problem(phase, data)
        if problem:
            raise ResultError(f"{path} cannot be used: {problem} (edited by hand?); run the job again "
                              f"(--rerun {backend}/{phase})")
        return data

    def earlier(self, backend: str, phase: str, fingerprint: str | None = None,
                profile: Any = None) -> tuple[JobResult | None, str | None]:
        """An earlier job's status if its result may be reused, else None and why not (None: it never finished).

        Reusable means: it succeeded; its result file is the one its status
        recorded when it ended (size and SHA-256), and sound; every file it
        promised still matches the checksum it wrote (and probabilities are
        sound probabilities); it saw the data ``fingerprint`` names (for phases
        whose results record one); it was timed as ``profile`` asks (for phases
        with timing fields); and its phase's own staleness check passes.
        Anything less runs the job again.
        """
        status = self.read_status(backend, phase)
        if status is None and self.file(backend, layout.status_name(phase)).exists():
            return None, (f"its status file {self.file(backend, layout.status_name(phase))} cannot be read "
                          "(damaged or edited), so how it ended is not known")
        if status is None or status.state is not JobState.SUCCEEDED:
            return None, None
        problem = checks.result_checksum_problem(self.file(backend, layout.result_name(phase)), status.result_file)
        if problem:
            return None, problem
        try:
            result = self.read_result(backend, phase)
        except ResultError as err:
            return None, str(err)
        spec = phases.get(phase)
        if fingerprint and spec.fingerprinted and result.get("data", {}).get("fingerprint") != fingerprint:
            seen = str(result.get("data", {}).get("fingerprint"))[:12]
            return None, (f"it saw other data (data fingerprint {seen}, the data set's is now {fingerprint[:12]}: "
                          "its images changed since)")
        folder = self.backend_dir(backend)
        problem = checks.outputs_problem(folder, result) if isinstance(result.get("outputs"), dict) else None
        problem = problem or checks.checksum_problem(folder, result, spec.promises)
        if problem is None and profile is not None and spec.timing_fields:
            asked = {name: getattr(profile, name) for name in spec.timing_fields}
            if spec.timed_with(result) != asked:
                changed = sorted(name for name, value in asked.items() if spec.timed_with(result).get(name) != value)
                problem = f"it was timed with other settings than the profile asks ({', '.join(changed)})"
        problem = problem or spec.still_valid(self, backend, result)
        if problem:
            return None, problem
        status.reused = True
        return status, None

    def kept(self, backend: str, phase: str, fingerprint: str | None = None) -> tuple[dict | None, str | None]:
        """The result an earlier session finished for a job this session did not plan (``pytest -k``).

        Checked like any reused result: (result, None); (None, why) when it
        cannot be used; (None, None) when no session finished it.
        """
        earlier, why = self.earlier(backend, phase, fingerprint)
        if earlier is None:
            return None, why
        return self.read_result(backend, phase), None

    def clear_phase(self, backend: str, phase: str) -> None:
        """Remove what an unfinished attempt of a job left, so it restarts clean; its log is kept aside.

        The phases of the same backend that read this one are cleared with it:
        their results describe outputs that are about to change.
        """
        folder = self.backend_dir(backend)
        folder.mkdir(parents=True, exist_ok=True)
        layout.remove_stale_temporaries(str(folder))
        stale, _ = phases.invalidated_by(phase)
        doomed = [layout.result_name(phase), layout.status_name(phase), layout.events_name(phase)]
        for name in stale - {phase}:
            doomed += [layout.result_name(name), layout.status_name(name)]
        for name in stale:
            doomed += list(phases.get(name).leaves)
        for name in doomed:
            try:
                (folder / name).unlink()
            except FileNotFoundError:
                pass
        log = folder / layout.log_name(phase)
        if log.exists():
            shutil.move(str(log), str(log) + ".previous")

    def statuses(self, backends: list[str]) -> dict[tuple[str, str], JobResult]:
        """How each job of a finished run ended: its status file, else what its stored analysis recorded."""
        stored = self._stored_statuses()
        found: dict[tuple[str, str], JobResult] = {}
        for name in backends:
            for phase in phases.names():
                status = self.read_status(name, phase)
                if status is None and f"{name}/{phase}" in stored:
                    status = JobResult.from_json(stored[f"{name}/{phase}"])
                if status is not None:
                    found[(name, phase)] = status
        return found

    def _stored_statuses(self) -> dict:
        try:
            statuses = read_json(self.analysis_path).get("statuses", {})
        except HarnessError:
            return {}
        return statuses if isinstance(statuses, dict) else {}

    # -- arrays ------------------------------------------------------------------------------
    def outputs(self, backend: str, predict: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """A predict result's softmax outputs and labels by split, each checked as probabilities.

        Raises ResultError naming the file, what is wrong and the job to run again.
        """
        classes = predict.get("data", {}).get("classes")
        if not isinstance(classes, list) or not classes:
            raise ResultError(f"{backend}'s predict.json names no classes; run the predict job again")
        found = {}
        outputs = predict.get("outputs", {})
        for split, info in (outputs.items() if isinstance(outputs, dict) else ()):
            if not isinstance(info, dict) or info.get("probs") != layout.probs_name(split) \
                    or info.get("labels") != layout.labels_name(split):
                raise ResultError(f"{backend}'s predict.json names other files for its {split} outputs; "
                                  "run the predict job again")
            probs = checks.load_array(self.file(backend, info["probs"]))
            labels = checks.load_array(self.file(backend, info["labels"]))
            problem = checks.probs_problem(probs, labels, len(classes), info.get("rows"))
            if problem:
                fix = (f"run train again (--rerun {backend}; or lower the learning rate)"
                       if problem == DIVERGED else f"run the predict job again (--rerun {backend}/predict)")
                raise ResultError(f"{self.file(backend, info['probs'])} {problem}: {fix}")
            found[split] = (probs, labels)
        if isinstance(predict.get("files"), dict):  # the job's own checksums, when it wrote them
            problem = checks.checksum_problem(self.backend_dir(backend), predict, phases.get("predict").promises)
            if problem:
                raise ResultError(f"{problem}; run the predict job again (--rerun {backend}/predict)")
        return found

    def probabilities(self, backend: str, split: str) -> np.ndarray:
        """One split's softmax outputs as the predict job wrote them."""
        return checks.load_array(self.file(backend, layout.probs_name(split)))

    def _named(self, backend: str, named: Any, expected: str, phase: str) -> Path:
        """The file a result names, which must be the job's own (a result never points elsewhere)."""
        if named not in (None, expected):
            raise ResultError(f"{backend}'s {layout.result_name(phase)} names {str(named)[:60]!r} instead of "
                              f"{expected}; run it again (--rerun {backend}/{phase})")
        return self.file(backend, expected)

    def fidelity_outputs(self, backend: str, result: dict) -> dict[str, np.ndarray]:
        """A fidelity job's softmax outputs for each member's weights, by member name."""
        path = self._named(backend, result.get("outputs"), layout.FIDELITY_PROBS, "fidelity")
        with np.load(path, allow_pickle=False) as stored:
            return {source: stored[source] for source in stored.files}

    def step_gradients(self, backend: str, step: dict) -> list[np.ndarray]:
        """A fidelity job's one-step gradients, in the model's weight order."""
        path = self._named(backend, step.get("gradients"), layout.STEP_GRADS, "fidelity")
        with np.load(path, allow_pickle=False) as stored:
            return [stored[f"arr_{i}"] for i in range(len(stored.files))]

    def serve_audit(self, backend: str, result: dict) -> dict[str, np.ndarray]:
        """A serve job's kept answers and their test rows, by array name (``<run>__rows``, ``<run>__probs``)."""
        path = self._named(backend, (result.get("audit") or {}).get("file"), layout.SERVE_AUDIT, "serve")
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except FileNotFoundError:
            raise ResultError(f"{path} is missing; run {backend}'s serve job again (--rerun {backend}/serve)") from None
        except (OSError, ValueError, EOFError) as err:
            raise ResultError(f"{path} is unreadable ({err}); run {backend}'s serve job again "
                              f"(--rerun {backend}/serve)") from None

    def weights(self, backend: str) -> list[np.ndarray]:
        """A member's trained weights (the portable layout every backend loads)."""
        path = self.file(backend, layout.WEIGHTS)
        try:
            with np.load(path, allow_pickle=False) as stored:
                return [stored[f"arr_{i}"] for i in range(len(stored.files))]
        except FileNotFoundError:
            raise ResultError(f"{path} is missing; run {backend}'s train job") from None
        except (OSError, ValueError, EOFError) as err:
            raise ResultError(f"{path} is unreadable ({err}); run {backend}'s train job again") from None

    def weights_problem(self, backend: str) -> str | None:
        """Why a member's trained weights cannot be used (NaN or infinite: the model diverged), or None."""
        try:
            arrays = self.weights(backend)
        except ResultError as err:
            return str(err)
        if not all(np.all(np.isfinite(a)) for a in arrays if a.dtype.kind == "f"):
            return f"its weights ({self.file(backend, layout.WEIGHTS)}) hold NaN or infinite values: the model diverged"
        return None

    def fidelity_staleness(self, backend: str, result: dict) -> str | None:
        """Why an earlier fidelity result no longer describes the members' weights, or None."""
        for source, described in sorted((result.get("sources") or {}).items()):
            recorded = (described or {}).get("weights_sha256") if isinstance(described, dict) else None
            weights = self.file(source, layout.WEIGHTS)
            if recorded and (not weights.is_file() or layout.sha256_file(str(weights)) != recorded):
                return (f"{backend}'s fidelity check ran {source}'s weights as they were before {source} trained "
                        f"again; run it again (--rerun {backend}/fidelity)")
        return None

    # -- what the end of a run writes --------------------------------------------------------
    def set_aside_derived(self, *copies: Path) -> None:
        """Rename an earlier session's ensemble.json and reports (and their ``copies``) to ``<name>.previous``.

        They describe the jobs as they were: once a job reruns (or the analysis
        fails), they would look current while being wrong. They are kept
        aside, not deleted, until this session has written its own
        (``drop_set_aside``): a run whose end fails never loses its last report.
        """
        for folder in (self.path, *copies):
            for name in DERIVED:
                path = Path(folder) / name
                if path.exists():
                    os.replace(path, path.with_name(name + PREVIOUS))

    def drop_set_aside(self, *copies: Path) -> None:
        """Delete what ``set_aside_derived`` kept, once this session wrote its own files."""
        for folder in (self.path, *copies):
            for name in DERIVED:
                try:
                    (Path(folder) / (name + PREVIOUS)).unlink()
                except FileNotFoundError:
                    pass

    def read_analysis(self) -> RunAnalysis:
        """The run's stored analysis (``ensemble.json``); a run that never got one names the fix."""
        if not self.analysis_path.is_file():
            raise ResultError(f"{self.analysis_path} does not exist: the run never reached its ensemble; run "
                              f"`kbench report {self.path} --write-analysis` to analyse what it finished")
        return read_analysis(self.analysis_path)

    def write_analysis(self, analysis: dict) -> Path:
        layout.atomic_write_json(str(self.analysis_path), analysis)
        return self.analysis_path

    def write_reports(self, rendered: dict[str, bytes]) -> list[Path]:
        """Write each rendered report (by format: ``html``, ``md``) into the run folder; their paths."""
        written = []
        for kind, data in rendered.items():
            path = self.report_path(kind)
            layout.atomic_write_bytes(str(path), data)
            written.append(path)
        return written


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) < 120 else text[:117] + "..."
