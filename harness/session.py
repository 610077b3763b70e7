"""One benchmark session, without pytest: prepare, run the jobs, gather the results.

The pytest plugin drives this object; a notebook or the CLI could too.
Order: check the executor and the shared folder before anything runs, hold
the run folder, write run.json, reuse finished jobs of an earlier session of
the same run, run the rest, then read everything back from the run folder.
"""
from __future__ import annotations

import datetime as dt
import errno
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from harness import __version__, keras_dataset, model_check, tuning
from harness.backends import Backend
from harness.config import RunConfig
from harness.errors import ConfigError, HarnessError
from harness.executors import executor_class
from harness.executors.base import Executor, ExecutorContext
from harness.jobs import JobResult, JobSpec, JobState
from harness.rundir import RunFolder
from harness.scheduler import Scheduler
from harness.scoring.analysis import analyse
from harness.scoring.gather import gather
from harness.scoring.run_analysis import RunAnalysis
from harness.workload import data, layout

PHASES = layout.PHASES


class BenchmarkSession:
    def __init__(self, config: RunConfig, say: Callable[[str], None] = print):
        self.config = config
        self.say = say
        self.executor: Executor | None = None
        self.folder = RunFolder(config.shared_dir, config.run_id)
        self.skipped: dict[str, str] = {}
        self.scheduler: Scheduler | None = None
        self.settings: dict = {}
        self.started = False
        self.parallel = 1
        self.threads = 1
        self.speed_threads = 1
        self.phases: tuple[str, ...] = planned_phases(config)
        self.analysis: RunAnalysis | None = None
        self.timings: dict[str, float] = {}
        """Seconds the harness itself spent: set-up before the first job, gathering after the last."""

    # -- set-up -----------------------------------------------------------------------
    def start(self) -> None:
        started = time.perf_counter()
        config = self.config
        check_shared_dir(config.shared_dir)
        context = ExecutorContext(config.shared_dir, config.work_dir, config.parallel, self.say)
        self.executor = executor_class(config.executor)(context, config.executor_settings)
        self.executor.check()
        self.skipped = self.executor.unavailable(config.backends)
        for backend in config.backends:
            reason = config.model.skip_reason(backend.name)
            if reason and backend.name not in self.skipped:
                self.skipped[backend.name] = reason
        for name, reason in self.skipped.items():
            self.say(f"skipping {name}: {reason}")
        runnable = [b for b in config.backends if b.name not in self.skipped]
        dataset = self.executor.stage_dataset(config.dataset)
        input_shape, n_classes = check_dataset(dataset, config, self.say)
        model_check.check(config.model, input_shape, n_classes, config.work_dir, self.say)

        try:
            self.folder.acquire()
            self.settings = self.folder.write_settings(self._run_settings(dataset))
            # every job builds the run folder's copy, on any executor: it is on the storage they all mount
            layout.atomic_write_bytes(str(self.folder.path / layout.MODEL_FILE), config.model.path.read_bytes())
            remove_derived(self.folder.path, config.reports_dir / config.run_id)  # only once this run goes on
        except OSError as err:
            raise ConfigError(f"cannot write the run folder {self.folder.path} ({err.strerror}); "
                              f"{storage_hint(err, config.run_id)}") from None
        self.executor.prepare(runnable)

        self.phases = planned_phases(config)
        n_jobs = len(runnable) * len(self.phases)
        self.parallel = config.parallel or self.executor.default_parallel(max(1, len(runnable)))
        self.threads = config.threads or self.executor.threads_per_job(self.parallel)
        self.speed_threads = config.speed_threads or 1
        self.executor.set_concurrency(self.parallel, self.threads)
        jobs = [self._job(b, phase) for phase in self.phases for b in slowest_first(runnable)]
        done = self._reusable(runnable)
        try:
            for job in jobs:
                if job.key not in done:
                    self.folder.clear_phase(job.backend.name, job.phase)
        except OSError as err:
            raise ConfigError(f"cannot clear the unfinished jobs in {self.folder.path} ({err.strerror}); "
                              f"{storage_hint(err, config.run_id)}") from None
        if done:
            reused = ", ".join(f"{b}/{p}" for b, p in done)
            self.say(f"reusing finished jobs of run {config.run_id}: {reused}")
        self.say(f"run {config.run_id}: {n_jobs - len(done)} jobs to run on the {config.executor} executor, "
                 f"{self.parallel} at a time, {self.threads} thread(s) each; folder {self.folder.path}")
        if "speed" in self.phases:
            self.say(f"speed is timed by one speed job per backend, each alone on the machine at "
                     f"{self.speed_threads} thread(s); the training jobs' own images/s are shared figures")
        self.scheduler = Scheduler(self.executor, jobs, self.parallel, done=done,
                                   on_event=self._on_event, on_result=self._on_result)
        self.started = True
        self.timings["setup_s"] = round(time.perf_counter() - started, 3)

    def _run_settings(self, dataset: dict) -> dict:
        return {
            "schema": layout.SCHEMA_VERSION,
            "run_id": self.config.run_id,
            "created_at": dt.datetime.now().isoformat(timespec="seconds"),
            "harness_version": __version__,
            "profile": self.config.profile.to_json(),
            "model": self.config.model.to_json(),
            "dataset": dataset,
            "backends": [b.name for b in self.config.backends],
            "executor": self.config.executor,
            "host": {"python": platform.python_version(), "platform": platform.platform(),
                     "cpus": os.cpu_count(), "argv": sys.argv[1:]},
        }

    def _job(self, backend: Backend, phase: str) -> JobSpec:
        threads = self.speed_threads if phase in layout.EXCLUSIVE_PHASES else self.threads
        return JobSpec(self.config.run_id, backend, phase, tuning.job_env(backend, threads),
                       self.config.timeout_s, threads)

    def _reusable(self, runnable: list[Backend]) -> dict[tuple[str, str], JobResult]:
        """Jobs an earlier session finished soundly; the rest (and those in --rerun) run again."""
        done = {}
        for backend in runnable:
            for phase in layout.MEMBER_PHASES:  # train first: a predict is reused only on reused weights
                if (backend.name, phase) in self.config.rerun:
                    continue
                if phase == "predict" and (backend.name, "train") not in done:
                    break
                result, problem = self.folder.earlier(backend.name, phase)
                if problem:
                    self.say(f"not reusing {backend.name}/{phase} of run {self.config.run_id}: {problem}; "
                             "running it again")
                if result is None:
                    break
                done[(backend.name, phase)] = result
        # a fidelity check ran every member's weights: reusable only if no train runs again
        if all((b.name, "train") in done for b in runnable):
            for backend in runnable:
                if (backend.name, "fidelity") in self.config.rerun:
                    continue
                fidelity, problem = self.folder.earlier(backend.name, "fidelity")
                if problem:
                    self.say(f"not reusing {backend.name}/fidelity of run {self.config.run_id}: {problem}; "
                             "running it again")
                if fidelity is not None:
                    done[(backend.name, "fidelity")] = fidelity
        # a speed job times the backend alone, from the run's seed: it needs no trained weights
        for backend in runnable:
            if "speed" not in self.phases or (backend.name, "speed") in self.config.rerun:
                continue
            speed, problem = self.folder.earlier(backend.name, "speed")
            if speed is not None and not self._timed_as_asked(backend.name):
                speed, problem = None, "it timed another number of steps than the profile asks"
            if problem:
                self.say(f"not reusing {backend.name}/speed of run {self.config.run_id}: {problem}; running it again")
            if speed is not None:
                done[(backend.name, "speed")] = speed
        return done

    def _timed_as_asked(self, backend: str) -> bool:
        try:
            settings = self.folder.read_result(backend, "speed").get("settings") or {}
        except HarnessError:
            return False
        profile = self.config.profile
        return (settings.get("steps"), settings.get("predict_batches")) == (profile.speed_steps,
                                                                            profile.speed_predict_batches)

    # -- running ------------------------------------------------------------------------
    def result(self, backend: str, phase: str) -> JobResult:
        if backend in self.skipped:
            return JobResult(backend, phase, JobState.SKIPPED, reason=self.skipped[backend],
                             executor=self.config.executor)
        assert self.scheduler is not None, "start() the session first"
        return self.scheduler.result(backend, phase)

    def run_all(self) -> dict[tuple[str, str], JobResult]:
        assert self.scheduler is not None, "start() the session first"
        return self.scheduler.run_all()

    def finish(self, run_remaining: bool = True) -> RunAnalysis:
        """Gather the run folder, ensemble it and write ensemble.json; returns the analysis.

        With ``run_remaining`` every planned job runs first; without it (a
        session whose selected tests did not need every job), jobs never
        started are left for a later session and reported as not selected.
        """
        if self.analysis is not None:
            return self.analysis
        statuses: dict = {}
        if self.scheduler is not None:
            statuses = dict(self.run_all() if run_remaining else self.scheduler.drain())
        started = time.perf_counter()
        for name, reason in self.skipped.items():
            for phase in self.phases:
                statuses[(name, phase)] = JobResult(name, phase, JobState.SKIPPED, reason=reason,
                                                    executor=self.config.executor)
        results = gather(self.folder, [b.name for b in self.config.backends], statuses, self.skipped)
        analysis = analyse(results, self.config.ensemble_method, table_images=self.config.report_images)
        analysis.settings = self.settings
        analysis.statuses = {f"{b}/{p}": r.to_json() for (b, p), r in sorted(statuses.items())}
        self.timings["gather_analyse_s"] = round(time.perf_counter() - started, 3)
        analysis.harness = {"peak_rss_mb": peak_rss_mb(), "parallel": self.parallel,
                            "threads_per_job": self.threads, "speed_threads": self.speed_threads,
                            "executor": self.config.executor,
                            "timings": dict(self.timings)}
        try:
            layout.atomic_write_json(str(self.folder.path / layout.ENSEMBLE_JSON), analysis.to_json())
        except OSError as err:  # the analysis is still used for the checks and the report
            self.say(f"could not write {self.folder.path / layout.ENSEMBLE_JSON} ({err.strerror}); "
                     f"{storage_hint(err, self.config.run_id)}")
        self.analysis = analysis
        return self.analysis

    def _on_event(self, job: JobSpec, event: dict) -> None:
        line = describe_event(event)
        if line:
            self.say(f"  [{job.label}] {line}")

    def _on_result(self, result: JobResult) -> None:
        if not result.reused:
            try:
                self.folder.write_status(result)
            except OSError as err:  # the job's end is still known here; only a later resume loses it
                self.say(f"  [{result.label}] could not record how it ended in {self.folder.path} "
                         f"({err.strerror}); {storage_hint(err, self.config.run_id)}")
        took = f" in {result.wall_s:.1f} s" if result.wall_s is not None else ""
        if result.ok:
            self.say(f"  [{result.label}] {result.state.value}{took}")
        else:
            self.say(f"  [{result.label}] {result.state.value}{took}: {result.reason}")

    def close(self, cancel: bool = False) -> None:
        """Stop what still runs (when cancelling), release the run folder."""
        try:
            if self.scheduler is not None and cancel:
                self.scheduler.cancel()
        finally:
            if self.executor is not None:
                self.executor.close()
            self.folder.release()


def planned_phases(config: RunConfig) -> tuple[str, ...]:
    """The phases each backend's jobs go through: the speed phase only when the profile times steps,
    and only those the selected cases need (``config.phases``)."""
    return tuple(p for p in PHASES if (p != "speed" or config.profile.speed_steps > 0)
                 and (config.phases is None or p in config.phases))


def storage_hint(err: OSError, run_id: str) -> str:
    """What to do about a failed write to the shared folder, in a few words."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the shared folder is full: free some space, then run again with --run-id {run_id} to resume"
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "check the shared folder's permissions or pass --shared-dir with another folder"
    return f"check the shared folder, then run again with --run-id {run_id} to resume"


DERIVED = (layout.ENSEMBLE_JSON, layout.REPORT_HTML, layout.REPORT_MD)
"""Files made from the jobs' results at the end of a session."""


def remove_derived(*folders: Path) -> None:
    """Delete an earlier session's ensemble.json and reports before this one runs anything.

    They describe the jobs as they were: once a job reruns (or the analysis
    fails), they would look current while being wrong. The session writes
    them again from the files as they are now.
    """
    for folder in folders:
        for name in DERIVED:
            try:
                (Path(folder) / name).unlink()
            except FileNotFoundError:
                pass


SLOWEST_FIRST = ("cntk", "theano", "jax", "torch", "tensorflow")
"""Training cost per image, highest first, as measured on a 2-core CPU. Starting the
slowest jobs first keeps every core busy until the end instead of leaving one long
job running alone."""


def slowest_first(backends: list[Backend]) -> list[Backend]:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    return sorted(backends, key=lambda b: rank.get(b.name, -1))


def peak_rss_mb() -> float:
    """Peak resident memory of the harness process so far, in MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def describe_event(event: dict) -> str | None:
    """A short progress line for the terminal, or None for events not worth a line."""
    kind = event.get("event")
    if kind == "step":
        rate = event.get("images_per_s")
        loss = event.get("loss")
        return (f"epoch {event.get('epoch')} step {event.get('step')}/{event.get('steps')}"
                + (f", {rate:.0f} img/s" if rate else "") + (f", loss {loss:.3f}" if loss is not None else ""))
    if kind == "epoch_end":
        text = (f"epoch {event.get('epoch')} done in {event.get('seconds', 0):.1f} s: "
                f"accuracy {event.get('accuracy', 0):.3f}, loss {event.get('loss', 0):.3f}")
        if event.get("val_accuracy") is not None:
            text += f", val accuracy {event['val_accuracy']:.3f}"
        return text
    if kind == "data_loaded":
        return f"data loaded in {event.get('seconds', 0):.2f} s"
    if kind == "evaluated":
        return f"test accuracy {event.get('accuracy', 0):.3f}"
    if kind == "predicted":
        return f"predicted {event.get('images')} images at {event.get('images_per_s', 0):.0f} img/s"
    if kind == "error":
        return f"error: {event.get('message')}"
    return None


CIFAR10_SHAPE = ((32, 32, 3), 10)
"""The image shape (channels last) and classes of ``--dataset keras``: CIFAR-10."""


def check_dataset(dataset: dict, config: RunConfig, say: Callable[[str], None]) -> tuple[tuple[int, ...], int]:
    """Decode the data set into the shared cache now, so a bad one is one clear message.

    Jobs then only read the cache. A ``keras`` download needs Keras, which the
    harness does not import; the first job fetches it instead, so here the
    harness only checks that it can be had (on this machine: a cluster's pods
    have their own network). Returns the image shape (channels last) and the
    number of classes, which the model is built for.
    """
    cache = layout.cache_dir(str(config.shared_dir))
    if dataset.get("kind") == "keras":
        if config.executor == "local":
            decoded = layout.dataset_cache_dir(cache, data.source_key("keras", None))
            source = keras_dataset.check_available(Path(decoded))
            say(f"data set: CIFAR-10 through keras.datasets, from {source}")
        return CIFAR10_SHAPE
    arrays = data.load(dataset, str(config.shared_dir), cache,
                       say=lambda line: say(f"{line} (first use of this data set)"))
    prepared = data.prepare(arrays, config.profile.to_json(), splits=())
    return tuple(int(d) for d in arrays.x["test"].shape[1:]), len(prepared.classes)


def check_shared_dir(path: Path) -> None:
    """Fail before anything runs if the shared folder cannot take the run's files."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the shared folder {path} ({err.strerror}); pass --shared-dir with a "
                          "folder you can write") from None
    probe = path / f".write-test-{os.getpid()}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        hint = "it is full; free some space" if err.errno == errno.ENOSPC else "check its permissions"
        raise ConfigError(f"cannot write to the shared folder {path} ({err.strerror}); {hint} or pass "
                          "--shared-dir with another folder") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
