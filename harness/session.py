"""A benchmark session, without pytest: its runs (one per model and repeat), their jobs, their ends.

``BenchmarkSession`` holds every run a set of options asks for
(``harness.options.build_runs``): it checks every model before the first job,
starts each run when a case (or ``run_all``) first needs it, ends each
started run (history, baseline, report) and summarises repeats.
``BenchmarkRun`` is one run: check the executor, the shared folder, the
data set and the model; hold the run's store, write run.json; plan its jobs
once (``harness.plan``, from the phase table); reuse what an earlier
session finished; run the rest; build the analysis; end it.

The pytest plugin drives this object; so can a notebook or a script
(``BenchmarkSession(configs).run_all()``). How each benchmark case is judged
is ``harness.verdicts``.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__, baselines, dataset_choice, phases, plan, preflight, run_end
from harness.config import RunConfig
from harness.errors import ConfigError, HarnessError
from harness.executors import executor_class
from harness.executors.base import Executor, ExecutorContext
from harness.jobs import JobResult, JobSpec, JobState
from harness.preflight import storage_hint
from harness.run_store import RunStore
from harness.scheduler import Scheduler
from harness.scoring.analysis import analyse_run
from harness.scoring.record import RunAnalysis
from harness.workload import layout


class BenchmarkRun:
    """One run: one model (and repeat) on every chosen backend."""

    def __init__(self, config: RunConfig, say: Callable[[str], None] = print):
        self.config = config
        self.say = say
        self.executor: Executor | None = None
        self.store = RunStore(config.shared_dir, config.run_id)
        self.skipped: dict[str, str] = {}
        self.scheduler: Scheduler | None = None
        self.settings: dict = {}
        self.started = False
        self.interrupted = False
        self.parallel = 1
        self.threads = 1
        self.speed_threads = 1
        self.phases: tuple[str, ...] = phases.planned(config.profile, config.phases)
        """The phases this run plans: the profile's, narrowed to what the selected cases need."""
        self.analysis: RunAnalysis | None = None
        self.end: run_end.RunEnd | None = None
        self.failure: str | None = None
        """Why the run ended without its analysis or report (one line naming ``kbench report``), or None."""
        self._assessment: baselines.Assessment | None = None
        self.timings: dict[str, float] = {}
        """Seconds the harness itself spent: set-up before the first job, gathering after the last."""

    # -- set-up -----------------------------------------------------------------------
    def start(self) -> None:
        if self.started:
            return
        started = time.perf_counter()
        config = self.config
        preflight.check_environment()
        if config.rerun and not self.store.exists():
            raise ConfigError(f"--rerun: there is no run {config.run_id} in {self.store.path.parent} to run jobs of "
                              "again; check --run-id and --shared-dir, or drop --rerun to start a new run")
        context = ExecutorContext(config.shared_dir, config.work_dir, config.parallel, self.say, config.runtime)
        self.executor = executor_class(config.executor)(context, config.executor_settings)
        self.executor.check()
        preflight.check_shared_dir(config.shared_dir)
        self.skipped = self.executor.unavailable(config.backends)
        for backend in config.backends:
            reason = config.model.skip_reason(backend.name)
            if reason and backend.name not in self.skipped:
                self.skipped[backend.name] = reason
        for name, reason in self.skipped.items():
            self.say(f"skipping {name}: {reason}")
        runnable = [b for b in config.backends if b.name not in self.skipped]
        dataset = self.executor.stage_dataset(config.dataset)
        if dataset_choice.is_bundled(config.dataset):  # what the report says of it travels with it
            dataset = {**dataset, **{k: config.dataset[k] for k in ("bundled", "chosen")}}
        shape = preflight.check_dataset(dataset, config, self.say)
        preflight.check_model(config, dataset, self.say, shape)

        try:
            self.store.acquire()
            self.settings = self.store.write_settings(self._run_settings(dataset))
            # every job builds the run folder's copy, on any executor: it is on the storage they all mount
            self.store.write_model_file(config.model.path.read_bytes())
            self.store.set_aside_derived(config.reports_dir / config.run_id)  # only once this run goes on
        except OSError as err:
            raise ConfigError(f"cannot write the run folder {self.store.path} ({err.strerror}); "
                              f"{storage_hint(err, config.run_id)}") from None
        self.executor.prepare(runnable)

        n_jobs = len(runnable) * len(self.phases)
        self.parallel = config.parallel or self.executor.default_parallel(max(1, len(runnable)))
        self.threads = config.threads or self.executor.threads_per_job(self.parallel)
        self.speed_threads = config.speed_threads or 1
        self.executor.set_concurrency(self.parallel, self.threads)
        jobs = plan.jobs(config.run_id, runnable, self.phases, self.threads, self.speed_threads, config.timeout_s,
                         device=self.executor.device)
        done = plan.reusable(self.store, [b.name for b in runnable], self.phases, config.rerun,
                             profile=config.profile, fingerprint=preflight.data_fingerprint(dataset, config),
                             say=self.say)
        try:
            for job in jobs:
                if job.key not in done:
                    self.store.clear_phase(job.backend.name, job.phase)
        except OSError as err:
            raise ConfigError(f"cannot clear the unfinished jobs in {self.store.path} ({err.strerror}); "
                              f"{storage_hint(err, config.run_id)}") from None
        if done:
            reused = ", ".join(f"{b}/{p}" for b, p in done)
            self.say(f"reusing finished jobs of run {config.run_id}: {reused}")
        self.say(f"run {config.run_id}: {n_jobs - len(done)} jobs to run on the {config.executor} executor, "
                 f"{self.parallel} at a time, {self.threads} thread(s) each; folder {self.store.path}")
        on_gpu = [b.name for b in runnable if self.executor.device(b) == "gpu"]
        if on_gpu:
            on_cpu = [b.name for b in runnable if b.name not in on_gpu]
            self.say(f"on the GPU: {', '.join(on_gpu)}, each job on a GPU of its own"
                     + (f"; on the CPU: {', '.join(on_cpu)} (Keras 2.3.1's builds have no GPU path here)"
                        if on_cpu else ""))
        if "speed" in self.phases:
            self.say(f"speed is timed by one speed job per backend, each alone on the machine at "
                     f"{self.speed_threads} thread(s); the training jobs' own images/s are shared figures")
        if "serve" in self.phases:
            self.say(f"serving is timed by one serve job per backend after its predict job, each alone on the "
                     f"machine at {self.speed_threads} thread(s): SingleStream, Offline and Server")
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
            "timing": {"quiet_wait_s": self.config.quiet_wait_s},
            **self.executor.facts(self.config.backends),
            "host": {"python": platform.python_version(), "platform": platform.platform(),
                     "cpus": os.cpu_count(), "argv": sys.argv[1:]},
        }

    # -- running ------------------------------------------------------------------------
    def plans(self, phase: str) -> bool:
        """Whether this run has jobs of ``phase`` (a profile may time no speed phase)."""
        return phase in self.phases

    def result(self, backend: str, phase: str) -> JobResult:
        """How the job ended (run now if needed, starting the run first)."""
        self.start()
        if backend in self.skipped:
            return JobResult(backend, phase, JobState.SKIPPED, reason=self.skipped[backend],
                             executor=self.config.executor)
        assert self.scheduler is not None
        return self.scheduler.result(backend, phase)

    def run_all(self) -> dict[tuple[str, str], JobResult]:
        """Run every planned job (the run started first)."""
        assert self.scheduler is not None, "start() the run first"
        return self.scheduler.run_all()

    def result_json(self, backend: str, phase: str) -> dict:
        """The job's own result file (raises ResultError when it cannot be used)."""
        return self.store.read_result(backend, phase)

    def finish(self, run_remaining: bool = True) -> RunAnalysis:
        """Gather the run folder, ensemble it and write ensemble.json; returns the analysis (built once).

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
        harness = {"peak_rss_mb": peak_rss_mb(), "parallel": self.parallel, "threads_per_job": self.threads,
                   "speed_threads": self.speed_threads, "executor": self.config.executor}
        analysis = analyse_run(self.store, [b.name for b in self.config.backends], statuses, self.skipped,
                               self.config.ensemble_method, self.config.report_images, harness)
        self.timings["gather_analyse_s"] = round(time.perf_counter() - started, 3)
        harness["timings"] = dict(self.timings)
        try:
            self.store.write_analysis(analysis.to_json())
        except OSError as err:  # the analysis is still used for the checks and the report
            self.say(f"could not write {self.store.analysis_path} ({err.strerror}); "
                     f"{storage_hint(err, self.config.run_id)}")
            self.failure = (f"could not write {self.store.analysis_path} ({err.strerror}); once there is room, "
                            f"write it and the report with kbench report {self.store.path} --write-analysis")
        self.analysis = analysis
        return self.analysis

    def assessment(self) -> baselines.Assessment:
        """Every baseline verdict of the run (worked out once, by the end of the run)."""
        if self._assessment is None:
            self._assessment = run_end.judge(self.finish(), run_end.EndSettings.of(self.config))
        return self._assessment

    def end_run(self) -> run_end.RunEnd:
        """History, baseline recording, report (``harness.run_end``), also when backends failed."""
        analysis = self.finish(run_remaining=False)
        started = time.perf_counter()
        self.end = run_end.finish(analysis, self.store, run_end.EndSettings.of(self.config), say=self.say)
        self.failure = self.failure or self.end.missing
        if self.failure is None:  # this session's files are written: the earlier session's go
            self.store.drop_set_aside(self.config.reports_dir / self.config.run_id)
        took = time.perf_counter() - started
        self.end.lines.append(f"harness time: set-up {self.timings.get('setup_s', 0):.2f} s, "
                              f"gather + ensemble {self.timings.get('gather_analyse_s', 0):.2f} s, "
                              f"report {took:.2f} s")
        return self.end

    def _on_event(self, job: JobSpec, event: dict) -> None:
        line = describe_event(event)
        if line:
            self.say(f"  [{job.label}] {line}")

    def _on_result(self, result: JobResult) -> None:
        if not result.reused:
            try:
                self.store.write_status(result)
            except OSError as err:  # the job's end is still known here; only a later resume loses it
                self.say(f"  [{result.label}] could not record how it ended in {self.store.path} "
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
            self.store.release()


@dataclass
class RepeatsSummary:
    """One model's repeats summarised: the files written and the sentences for the terminal."""

    model: str
    paths: list[Path]
    lines: list[str]


class BenchmarkSession:
    """Every run a set of options asks for: one per model and repeat, in the order asked."""

    def __init__(self, configs: list[RunConfig], say: Callable[[str], None] = print):
        if not configs:
            raise ConfigError("a session needs at least one run")
        self.say = say
        self.runs = [BenchmarkRun(c, say) for c in configs]
        self.models_checked = False
        self._model_problem: HarnessError | None = None
        self.lines: list[str] = []
        """Lines for the end of the session (repeats' summaries)."""
        self._previous_sigterm: Any = None

    def of(self, label: str | None) -> BenchmarkRun:
        """The run a case names (its model, or ``r2`` for a repeat); the first one for None."""
        return next((r for r in self.runs if r.config.label == label), self.runs[0])

    def check_models(self) -> None:
        """Build every model of the user's once before the first job of the session (a bad one stops all,
        and is not built again by the next case: its problem is raised again as it was)."""
        if self.models_checked:
            if self._model_problem is not None:
                raise self._model_problem
            return
        try:
            for run in self.runs:
                preflight.check_model(run.config, run.config.dataset, self.say)
        except HarnessError as err:
            self._model_problem = err
        except Exception as err:  # noqa: BLE001 (a model file can fail in any way: one line, once)
            self._model_problem = ConfigError(f"could not check the model files ({type(err).__name__}: "
                                              f"{' '.join(str(err).split())[:200]})")
        self.models_checked = True
        if self._model_problem is not None:
            raise self._model_problem

    def start(self, run: BenchmarkRun) -> None:
        """Start one run (its models checked first); SIGTERM then interrupts the session like Ctrl-C."""
        if run.started:
            return
        if self._previous_sigterm is None:
            self._previous_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        try:
            self.check_models()
            run.start()
        except HarnessError:
            run.close(cancel=True)
            raise

    def started(self) -> list[BenchmarkRun]:
        return [r for r in self.runs if r.started]

    def end(self) -> list[RepeatsSummary]:
        """End every started run that was not interrupted (history, baseline, report), then the repeats.

        A run whose analysis fails is one line in ``failures``, not a traceback; so is a run whose
        analysis or report could not be written (``BenchmarkRun.failure``).
        """
        for run in self.runs:
            if run.started and not run.interrupted:
                try:
                    run.end_run()
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as err:  # noqa: BLE001 (the jobs' results are kept: say what to do)
                    run.failure = (f"could not analyse run {run.config.run_id} ({type(err).__name__}: "
                                   f"{' '.join(str(err).split())[:200]}); its results are in {run.store.path}: "
                                   f"analyse them again with kbench report {run.store.path}")
                    self.say(run.failure)
                finally:
                    run.close(cancel=False)
        return self.end_repeats()

    @property
    def failures(self) -> list[str]:
        """Why each run that ended has no analysis or report; a session with any must not pass."""
        return [run.failure for run in self.runs if run.failure]

    def end_repeats(self) -> list[RepeatsSummary]:
        """With ``--repeats``: each model's means and 95% intervals over its finished repeats."""
        groups: dict[str, list[BenchmarkRun]] = {}
        for run in self.runs:
            if run.config.repeat and run.analysis is not None and not run.interrupted:
                groups.setdefault(run.config.model.name, []).append(run)
        summaries = []
        for model, group in groups.items():
            if len(group) < 2:
                self.lines.append(f"repeats of {model}: only {len(group)} run finished, so there is no "
                                  "spread to show")
                continue
            base_id = group[0].config.repeat_of or group[0].config.run_id
            title = f"Keras multi-backend benchmark: {len(group)} repeats of run {base_id}, model {model}"
            paths, lines = run_end.finish_repeats([r.analysis for r in group],
                                                  group[0].config.reports_dir / base_id, title)
            self.lines += [f"repeats of {model} ({len(group)} runs, means with 95% intervals):"]
            self.lines += [f"  {line}" for line in lines] + [f"repeats report: {p}" for p in paths]
            summaries.append(RepeatsSummary(model, paths, lines))
        return summaries

    def run_all(self) -> list[BenchmarkRun]:
        """Every run from start to report, one after the other: a whole session without pytest."""
        try:
            for run in self.runs:
                self.start(run)
                run.finish()
            self.end()
        except KeyboardInterrupt:
            for run in self.started():
                run.interrupted = True
            self.close(cancel=True)
            raise
        finally:
            self.close(cancel=False)
        return self.runs

    def interrupt(self) -> None:
        """Ctrl-C or SIGTERM: stop every job now; the run folders stay resumable."""
        for run in self.started():
            run.interrupted = True
            run.say(f"interrupted: stopping every job; run again with --run-id {run.config.run_id} to resume")
        self.close(cancel=True)

    def close(self, cancel: bool) -> None:
        for run in self.runs:
            run.close(cancel=cancel)
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None


def _sigterm_to_interrupt(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


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
    if kind == "served":
        return _served_line(event)
    if kind == "error":
        return f"error: {event.get('message')}"
    return None


def _served_line(event: dict) -> str:
    scenario = event.get("scenario")
    if scenario == "single-stream":
        return f"SingleStream: {event.get('queries')} queries, p90 {event.get('p90_ms')} ms"
    if scenario == "offline":
        return f"Offline: batch sizes {event.get('batches')}, the best {event.get('best_batch')}"
    rate = event.get("peak_rate")
    peak = f"{rate:.1f} queries/s" if isinstance(rate, (int, float)) else "none"
    return f"Server: peak rate within the bound {peak} after {event.get('trials')} trial(s)"
