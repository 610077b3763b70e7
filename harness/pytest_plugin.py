"""pytest glue for ``pytest benchmarks/``: options, fixtures, parametrization, summary.

Thin on purpose: the work is done by ``harness.session.BenchmarkSession``
(jobs, gather, analysis) and ``harness.run_end`` (history, baseline verdicts,
report), which know nothing about pytest; the plugin turns their verdicts
into passes, failures and skips. Registered through the
``pytest11`` entry point; it does nothing until a test asks for its fixtures.
"""
from __future__ import annotations

import dataclasses
import importlib
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness import backends as backend_registry
from harness import baselines, executors, model_files, profiles
from harness.config import RunConfig, build_all, parse_positive_int, run_labels
from harness.errors import HarnessError
from harness.jobs import JobResult, JobState, reasons_once
from harness.scoring import variants
from harness.scoring.run_analysis import RunAnalysis
from harness.session import BenchmarkSession, planned_phases
from harness.workload.layout import PHASES

GROUP = "keras-multibackend"
session_key = pytest.StashKey["KbenchRuns"]()
backends_key = pytest.StashKey[list]()
models_key = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "Keras multi-backend benchmarks (pytest benchmarks/)")
    group.addoption("--backend", default="all", metavar="NAMES",
                    help=f"backends to run: one name, a comma list, or all ({backend_registry.valid_choices()})")
    group.addoption("--executor", default="local", metavar="NAME",
                    help=f"where jobs run: {', '.join(executors.names())} (default: local)")
    group.addoption("--model", default=model_files.DEFAULT, metavar="NAMES",
                    help="the model to benchmark: a shipped one (" + ", ".join(model_files.shipped())
                         + "), the path of a model file (a .py defining build(keras, input_shape, n_classes)), "
                         "or a comma list of them: one run each, cases named <model>-<backend> "
                         f"(default: {model_files.DEFAULT}, the seed's CNN)")
    group.addoption("--profile", default="default", metavar="NAME",
                    help="benchmark size: " + "; ".join(f"{p.name}: {p.description}" for p in profiles.PROFILES.values())
                    + "; or a .json file with every profile field")
    group.addoption("--dataset", default=None, metavar="PATH",
                    help="image-folder data set (folder or .tar.gz with train/<class>/, test/<class>/), or "
                         "'keras' to download CIFAR-10 (default: $KBENCH_DATASET, else keras)")
    group.addoption("--shared-dir", default=None, metavar="DIR",
                    help="shared folder holding runs/ and cache/ (default: <rootdir>/.kbench/shared)")
    group.addoption("--run-id", default=None, metavar="ID",
                    help="name of the run; an existing run is resumed, finished jobs are not re-run "
                         "(default: a new timestamped id)")
    group.addoption("--rerun", default=None, metavar="JOBS",
                    help="with --run-id of an earlier run: run these jobs again even if they finished, as "
                         "BACKEND or BACKEND/PHASE, comma-separated, or all (rerunning train reruns its predict)")
    group.addoption("--repeats", default=None, metavar="N",
                    help="run every backend's training N times, repeat i with train_seed = seed + i - 1 "
                         "(runs <run-id>-r1 ...); accuracy and speed are then given as means with 95%% "
                         "intervals, and a backend is called best only where they separate it (default: 1)")
    group.addoption("--parallel", default=None, metavar="N", help="jobs to run at once (default: the executor's choice)")
    group.addoption("--threads", default=None, metavar="N", help="CPU threads per job (default: cores / parallel jobs)")
    group.addoption("--speed-threads", default=None, metavar="N",
                    help="CPU threads of each speed job, the same for every backend; each runs alone (default: 1)")
    group.addoption("--job-timeout", default=None, metavar="SECONDS", help="kill a job after this long (default: the profile's)")
    group.addoption("--work-dir", default=None, metavar="DIR",
                    help="machine-local state: runtimes, staged code (default: <rootdir>/.kbench)")
    group.addoption("--reports-dir", default=None, metavar="DIR",
                    help="where report.html and report.md are copied (default: <rootdir>/reports/out)")
    group.addoption("--baselines", default=None, metavar="DIR",
                    help="folder of stored expectations, one <profile>.json each (default: <rootdir>/benchmarks/baselines)")
    group.addoption("--record-baseline", action="store_true", default=False,
                    help="write this run's measured accuracies as the profile's new baseline (checks are not applied)")
    group.addoption("--require-baseline", action="store_true", default=False,
                    help="fail the accuracy checks when the profile has no baseline (or it lacks a backend); "
                         "without it they are skipped with a note (for CI)")
    group.addoption("--ensemble", default="seed", metavar="VARIANT",
                    help="the ensemble variant reported as 'the ensemble' and recorded by --record-baseline "
                         "(a baseline checks the variant it names): " + ", ".join(variants.NAMES)
                         + "; seed = training-accuracy weights (default), +T = then a temperature fitted "
                         "on the validation split")
    group.addoption("--history-dir", default=None, metavar="DIR",
                    help="run history store, one <profile>.jsonl each (default: <shared-dir>/history)")
    group.addoption("--report-images", default=None, metavar="N",
                    help="test images in the report's per-image table (default: 10)")
    for name, cls in _loadable_executors():
        for option in cls.options:
            group.addoption(option.flag, dest=option.dest, default=option.default, type=option.parse,
                            metavar=option.metavar, help=f"[{name} executor] {option.help}")


def _loadable_executors() -> list[tuple[str, type]]:
    """Executors whose module imports; choosing a broken one fails later with the reason."""
    found = []
    for name in executors.names():
        try:
            found.append((name, executors.executor_class(name)))
        except HarnessError:
            continue
    return found


def pytest_configure(config: pytest.Config) -> None:
    try:
        config.stash[backends_key] = backend_registry.parse_backends(config.getoption("--backend"))
        config.stash[models_key] = run_labels(
            model_files.parse(config.getoption("--model"), Path(config.invocation_params.dir)),
            parse_positive_int("--repeats", config.getoption("--repeats")) or 1)
        profiles.get(config.getoption("--profile"))
        executors.executor_class(config.getoption("--executor"))
    except HarnessError as err:
        raise pytest.UsageError(str(err)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Cases per backend; with several runs, per run and backend: ``[resnet-small-tensorflow]`` for
    ``--model seed,resnet-small``, ``[r2-tensorflow]`` for ``--repeats 3``."""
    names = [b.name for b in metafunc.config.stash[backends_key]]
    models = metafunc.config.stash[models_key]
    several = len(models) > 1 and "model_name" in metafunc.fixturenames
    if "backend_name" in metafunc.fixturenames:
        if several:
            pairs = [(m, b) for m in models for b in names]
            metafunc.parametrize("model_name,backend_name", pairs, ids=[f"{m}-{b}" for m, b in pairs])
        else:
            metafunc.parametrize("backend_name", names, ids=names)
    elif several:
        metafunc.parametrize("model_name", models, ids=models)


@pytest.fixture
def model_name(request: pytest.FixtureRequest) -> str:
    """The run of the calling case (its model, or ``r2`` for a repeat): its parameter with several
    runs, else the only one."""
    return request.config.stash[models_key][0]


def _run_configs(config: pytest.Config) -> list[RunConfig]:
    root = Path(config.rootpath)
    get = config.getoption
    settings = {}
    for _name, cls in _loadable_executors():
        for option in cls.options:
            settings[option.dest] = get(option.dest)
    return build_all(
        model=get("--model"),
        backend=get("--backend"), profile=get("--profile"), executor=get("--executor"),
        dataset=get("--dataset"),
        shared_dir=get("--shared-dir") or root / ".kbench" / "shared",
        run_id=get("--run-id"),
        work_dir=get("--work-dir") or root / ".kbench",
        reports_dir=get("--reports-dir") or root / "reports" / "out",
        cwd=Path(config.invocation_params.dir),
        parallel=get("--parallel"), threads=get("--threads"), speed_threads=get("--speed-threads"),
        job_timeout=get("--job-timeout"),
        ensemble_method=get("--ensemble"), history_dir=get("--history-dir"),
        report_images=get("--report-images"), executor_settings=settings, rerun=get("--rerun"),
        repeats=get("--repeats"),
        baselines_dir=get("--baselines") or root / "benchmarks" / "baselines",
        record_baseline=get("--record-baseline"), require_baseline=get("--require-baseline"),
    )


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """Check every option before the first test when benchmark cases were collected."""
    if not any("kbench" in getattr(item, "fixturenames", ()) for item in items):
        return
    try:
        run_configs = _run_configs(config)
    except HarnessError as err:
        raise pytest.UsageError(str(err)) from None
    config.stash[session_key] = KbenchRuns(run_configs, config)
    models = config.stash[models_key]
    if len(models) > 1:  # one model's cases after the other's: its jobs end before the next model's start
        order = {name: i for i, name in enumerate(models)}
        items.sort(key=lambda item: order.get(_case_model(item), 0))
    if run_configs[0].profile.speed_steps < 1:  # the profile times no speed phase: no case to show for it
        timed = [item for item in items if getattr(item, "originalname", None) == "test_speed"]
        if timed:
            config.hook.pytest_deselected(items=timed)
            items[:] = [item for item in items if item not in timed]


CASE_PHASES = {
    "test_train": ("train",),
    "test_predict": ("train", "predict"),
    "test_ensemble": ("train", "predict"),
    "test_fidelity": ("train", "fidelity"),
    "test_speed": ("speed",),
}
"""The job phases each benchmark case needs; a case not named here (a user's own) needs them all."""


def phases_for(items: list) -> tuple[str, ...] | None:
    """The phases the selected cases need (``-k test_speed`` times speed and trains nothing); None: all."""
    needed: set[str] = set()
    for item in items:
        if "kbench" not in getattr(item, "fixturenames", ()):
            continue
        phases = CASE_PHASES.get(getattr(item, "originalname", None) or item.name)
        if phases is None:
            return None
        needed.update(phases)
    return tuple(sorted(needed)) if needed else None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once ``-k``/``-m`` have deselected cases: plan only the jobs the remaining cases need."""
    runs = session.config.stash.get(session_key, None)
    phases = phases_for(session.items)
    if runs is None or phases is None or set(phases) >= set(PHASES):
        return
    for run in runs.runs:
        run.plan_only(phases)


def _case_model(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("model_name") if callspec is not None else None


class KbenchRuns:
    """One ``KbenchRun`` per model of the session, in the order asked; every model is built before any job."""

    def __init__(self, run_configs: list[RunConfig], pytest_config: pytest.Config):
        self.runs = [KbenchRun(c, pytest_config, self) for c in run_configs]
        self.models_checked = False
        self.summary_lines: list[str] = []

    def of(self, model: str | None) -> KbenchRun:
        return next((r for r in self.runs if r.config.label == model), self.runs[0])

    def check_models(self, say) -> None:
        """Build every non-default model once before the first job of the session (a bad one stops all)."""
        if self.models_checked:
            return
        from harness import model_check, session

        for run in self.runs:
            if not run.config.model.is_default:
                shape, classes = session.check_dataset(run.config.dataset, run.config, say)
                model_check.check(run.config.model, shape, classes, run.config.work_dir, say)
        self.models_checked = True

    def end_repeats(self) -> None:
        """With ``--repeats``: each model's means and 95% intervals over its finished repeats."""
        from harness import run_end

        groups: dict[str, list[KbenchRun]] = {}
        for run in self.runs:
            if run.config.repeat and run.session.analysis is not None and not run.interrupted:
                groups.setdefault(run.config.model.name, []).append(run)
        for model, group in groups.items():
            if len(group) < 2:
                self.summary_lines.append(f"repeats of {model}: only {len(group)} run finished, so there is no "
                                          "spread to show")
                continue
            base_id = group[0].config.run_id.rpartition("-r")[0]
            title = f"Keras multi-backend benchmark: {len(group)} repeats of run {base_id}, model {model}"
            paths, lines = run_end.finish_repeats([r.session.analysis for r in group],
                                                  group[0].config.reports_dir / base_id, title)
            self.summary_lines += [f"repeats of {model} ({len(group)} runs, means with 95% intervals):"]
            self.summary_lines += [f"  {line}" for line in lines] + [f"repeats report: {p}" for p in paths]

    def started(self) -> list[KbenchRun]:
        return [r for r in self.runs if r.session.started]

    def close(self, cancel: bool) -> None:
        for run in self.runs:
            run.close(cancel=cancel)


class KbenchRun:
    """What the benchmark cases see: jobs by backend and phase, results, the report."""

    def __init__(self, run_config: RunConfig, pytest_config: pytest.Config, runs: KbenchRuns | None = None):
        self.config = run_config
        self._runs = runs
        self._pytest_config = pytest_config
        self.session = BenchmarkSession(run_config, say=self.say)
        self.report_paths: list[Path] = []
        self.summary_lines: list[str] = []
        self.interrupted = False
        self._assessment: baselines.Assessment | None = None
        self._previous_sigterm: Any = None

    def plan_only(self, phases: tuple[str, ...]) -> None:
        """Run only the jobs of these phases (before the session starts: it plans its jobs then)."""
        self.config = dataclasses.replace(self.config, phases=phases)
        self.session.config = self.config
        self.session.phases = planned_phases(self.config)

    def say(self, message: str) -> None:
        """Print a line now, even while pytest captures the test's output."""
        plugins = self._pytest_config.pluginmanager
        reporter = plugins.get_plugin("terminalreporter")
        capture = plugins.get_plugin("capturemanager")
        if reporter is None:
            print(message, flush=True)
            return
        if capture is None:
            reporter.ensure_newline()
            reporter.write_line(message)
            return
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(message)

    def start(self) -> None:
        if self.session.started:
            return
        self._previous_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        try:
            if self._runs is not None:
                self._runs.check_models(self.say)
            self.session.start()
        except HarnessError as err:
            self.session.close(cancel=True)
            pytest.exit(f"keras-multibackend: {err}", returncode=pytest.ExitCode.USAGE_ERROR)
        # the report's imports (matplotlib: ~0.5 s) load while the jobs run, not after; only once
        # the session has started: a thread still importing C extensions while a refused session
        # exits can crash the interpreter at shutdown (seen once: exit -11 after the usage error)
        threading.Thread(target=importlib.import_module, args=("harness.report",), daemon=True,
                         name="import-report").start()

    def job(self, backend: str, phase: str) -> JobResult:
        """The ended job (run now if needed); skips or fails the calling test as it ended."""
        self.start()
        result = self.session.result(backend, phase)
        if result.state is JobState.SKIPPED:
            # not run: the backend cannot run here, its train failed (that case fails), or
            # --emit-manifests only wrote what would be submitted
            pytest.skip(result.reason)
        return result

    def plans(self, phase: str) -> bool:
        """Whether this run has jobs of ``phase`` (a profile may time no speed phase)."""
        return phase in self.session.phases

    def result_json(self, backend: str, phase: str) -> dict:
        """The job's own result file (train.json / predict.json); fails the test if it is unusable."""
        try:
            return self.session.folder.read_result(backend, phase)
        except HarnessError as err:
            pytest.fail(f"{backend}/{phase} ended but its result cannot be used: {err}", pytrace=False)

    # -- results and baselines ------------------------------------------------------------
    def analysis(self, run_remaining: bool = True) -> RunAnalysis:
        """Jobs ended, gathered and ensembled (computed once); see ``BenchmarkSession.finish``."""
        self.start()
        return self.session.finish(run_remaining=run_remaining)

    def assessment(self) -> baselines.Assessment:
        """Every baseline verdict of the run (worked out once, by the end of the run)."""
        if self._assessment is None:
            from harness import run_end

            self._assessment = run_end.judge(self.analysis(), run_end.EndSettings.of(self.config))
        return self._assessment

    def _unchecked(self, message: str) -> None:
        """Nothing to check against: skip with the one line, or fail it under --require-baseline."""
        if self.config.require_baseline:
            pytest.fail(f"{message} (--require-baseline)", pytrace=False)
        pytest.skip(message)

    def _judge(self, verdict: baselines.Verdict) -> None:
        if verdict.passed is None:
            self._unchecked(verdict.message)
        if not verdict.passed:
            pytest.fail(verdict.message, pytrace=False)

    def check_member(self, backend: str, measured: float) -> None:
        """Fail the calling test if the backend's test accuracy is below its baseline; skip without one."""
        if self.config.record_baseline:
            return
        self._judge(baselines.member_verdict(self.config.baseline_path, self.config.profile.name,
                                             backend, measured))

    def check_ensemble(self) -> RunAnalysis:
        """The ensemble's verdicts (accuracy, then the gap to its best member) as pass, fail or skip."""
        analysis = self.analysis()
        if analysis.ensemble is None and analysis.job_states <= {JobState.SKIPPED.value}:
            pytest.skip("no job ran, so there is nothing to ensemble")
        if analysis.ensemble is None and analysis.ensemble_unavailable:
            pytest.fail(analysis.ensemble_unavailable, pytrace=False)  # e.g. --ensemble fitted, no val split
        if analysis.ensemble is None:
            left = reasons_once(analysis.left_out)
            pytest.fail(f"no backend finished, so there is no ensemble ({left})", pytrace=False)
        if self.config.record_baseline:
            return analysis
        assessment = self.assessment()
        if assessment.state == "missing":
            self._unchecked(assessment.message)
        if assessment.state == "invalid" or assessment.ensemble is None:
            pytest.fail(assessment.message or assessment.ensemble_problem, pytrace=False)
        self._judge(assessment.ensemble)  # the baseline names the variant it checks
        if assessment.gap is not None and not assessment.gap.passed:
            pytest.fail(assessment.gap.message, pytrace=False)
        return analysis

    def end_run(self) -> None:
        """History, baseline recording, report: ``harness.run_end`` (also when backends failed)."""
        from harness import run_end  # imports the report's modules: only once a run ends

        analysis = self.analysis(run_remaining=False)
        started = time.perf_counter()
        end = run_end.finish(analysis, self.session.folder.path, run_end.EndSettings.of(self.config),
                             say=self.say)
        self.report_paths = end.report_paths
        self.summary_lines += end.lines
        took = time.perf_counter() - started
        self.summary_lines.append(f"harness time: set-up {self.session.timings.get('setup_s', 0):.2f} s, "
                                  f"gather + ensemble {self.session.timings.get('gather_analyse_s', 0):.2f} s, "
                                  f"report {took:.2f} s")

    def close(self, cancel: bool) -> None:
        self.session.close(cancel=cancel)
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None


def _sigterm_to_interrupt(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


@pytest.fixture(scope="session")
def kbench_runs(request: pytest.FixtureRequest) -> KbenchRuns:
    """Every model's run of the session; each that started is ended (history, report) at the end."""
    runs = request.config.stash.get(session_key, None)
    if runs is None:
        runs = KbenchRuns(_run_configs(request.config), request.config)
        request.config.stash[session_key] = runs
    yield runs
    for run in runs.runs:
        if run.session.started and not run.interrupted:
            try:
                run.end_run()
            finally:
                run.close(cancel=False)
    runs.end_repeats()


@pytest.fixture
def kbench(request: pytest.FixtureRequest, kbench_runs: KbenchRuns) -> KbenchRun:
    """The run of the calling case's model (the only one, unless --model named several)."""
    model = request.getfixturevalue("model_name") if "model_name" in request.fixturenames else None
    return kbench_runs.of(model)


def fail_unless_ok(result: JobResult) -> None:
    """Fail the calling test with the job's one-line reason and its log tail."""
    if result.ok:
        return
    text = f"{result.label} {result.state.value}: {result.reason}"
    if result.log_tail:
        text += "\n--- last lines of the job's log ---\n" + result.log_tail
    pytest.fail(text, pytrace=False)


def record_job_timing(request: pytest.FixtureRequest, result: JobResult, figures: dict[str, Any]) -> None:
    """Give pytest-benchmark the job's own wall time, and the figures measured inside it.

    The executor measured the job from submission to its end; jobs may run in
    parallel, so timing the wait in this test would be wrong. pytest-benchmark
    has no public way to record an external duration: we hand ``pedantic`` a
    clock that reads the job's start and end (pinned pytest-benchmark 5.3.1;
    ``tests/test_plugin.py`` checks the saved JSON holds exactly this).

    The ``benchmark`` fixture is requested here, only for a job that ran, so a
    failed or skipped job leaves no "fixture was not used" warning behind.
    """
    benchmark = request.getfixturevalue("benchmark")
    model = request.getfixturevalue("kbench").config.model
    benchmark.extra_info.update(model=model.name, model_sha256=model.sha256)
    benchmark.extra_info.update({k: v for k, v in figures.items() if v is not None})
    benchmark.extra_info["job_wall_s"] = result.wall_s
    benchmark.extra_info["reused_from_earlier_session"] = result.reused
    if result.wall_s is None:
        return
    readings = iter((0.0, float(result.wall_s)))
    benchmark._timer = lambda: next(readings)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1, warmup_rounds=0)


SPEED_BLOCK_STEPS = 10
"""Steady training steps per pytest-benchmark round of a speed case."""


def record_speed(request: pytest.FixtureRequest, result: JobResult, speed_json: dict, row: dict[str, Any]) -> None:
    """Give pytest-benchmark the speed job's steady training steps, one round per block of steps.

    Each round is the time of ``SPEED_BLOCK_STEPS`` consecutive steps (as
    ``record_job_timing``, through a clock that reads recorded times), so
    ``pytest-benchmark compare`` shows a spread, not one number. Every step's
    time, the ceiling and the thread count go into extra_info["speed"], which
    the regression gate (``kbench gate``) compares as distributions.
    """
    benchmark = request.getfixturevalue("benchmark")
    model = request.getfixturevalue("kbench").config.model
    benchmark.extra_info.update(model=model.name, model_sha256=model.sha256)  # the gate compares per model
    steps = [float(s) for s in speed_json["train"]["step_s"]]
    predict = speed_json.get("predict") or {}
    benchmark.extra_info["speed"] = {
        "train_step_ms": [round(s * 1000.0, 4) for s in steps],
        "predict_batch_ms": [round(s * 1000.0, 4) for s in predict.get("batch_s", [])],
        "images_per_step": speed_json["train"].get("images_per_step"),
        "ceiling_gflops": row.get("ceiling_gflops"),
        "threads": (speed_json.get("settings") or {}).get("threads"),
        "machine": row.get("machine"),
        "train_images_per_s": row["train"]["images_per_s"],
        "predict_images_per_s": (row.get("predict") or {}).get("images_per_s"),
        "train_mfu": row.get("train_mfu"),
        "inference_mfu": row.get("inference_mfu"),
        "configuration": row.get("configuration"),
        "measured": "alone: no other job of the run ran during the timed steps",
    }
    benchmark.extra_info["job_wall_s"] = result.wall_s
    benchmark.extra_info["reused_from_earlier_session"] = result.reused
    blocks = [sum(steps[i:i + SPEED_BLOCK_STEPS]) for i in range(0, len(steps) - SPEED_BLOCK_STEPS + 1,
                                                                  SPEED_BLOCK_STEPS)] or [sum(steps)]
    readings = iter([reading for block in blocks for reading in (0.0, block)])
    benchmark._timer = lambda: next(readings)
    benchmark.pedantic(lambda: None, rounds=len(blocks), iterations=1, warmup_rounds=0)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On Ctrl-C or SIGTERM, stop every job before fixtures are torn down.

    Runs before pytest tears down the session fixture, which would otherwise
    wait for the remaining jobs. The run folder stays resumable: finished jobs
    keep their results, the rest restart clean on the next session.
    """
    runs = session.config.stash.get(session_key, None)
    if runs is not None and exitstatus == pytest.ExitCode.INTERRUPTED:
        for run in runs.started():
            run.interrupted = True
            run.say("interrupted: stopping every job; run again with --run-id "
                    f"{run.config.run_id} to resume")
        runs.close(cancel=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    runs = config.stash.get(session_key, None)
    if runs is not None:
        runs.close(cancel=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    runs = config.stash.get(session_key, None)
    if runs is None or not runs.started():
        return
    terminalreporter.section("keras-multibackend")
    for run in runs.started():
        if len(runs.runs) > 1:
            terminalreporter.write_line(f"run {run.config.label}:")
        for line in run.summary_lines:
            terminalreporter.write_line(line)
        for path in run.report_paths:
            terminalreporter.write_line(f"report: {path}")
        terminalreporter.write_line(f"run folder: {run.session.folder.path}")
    for line in runs.summary_lines:
        terminalreporter.write_line(line)
