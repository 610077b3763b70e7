"""pytest glue for ``pytest benchmarks/``: options, fixtures, parametrization, pass/fail/skip, summary.

Thin on purpose. The options are the option table's (``harness.options``);
the work is ``harness.session.BenchmarkSession`` (runs, jobs, analysis, the
end of each run); each case's verdict is ``harness.verdicts``. The plugin
maps cases to the phases they need (declared on the case with the
``kbench_phases`` marker) and verdicts to passes, failures and skips.
Registered through the ``pytest11`` entry point; it does nothing until a test
asks for its fixtures.
"""
from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any

import pytest

from harness import backends as backend_registry
from harness import executors, models, options, phases, profiles
from harness.config import parse_repeats, run_labels
from harness.errors import HarnessError
from harness.jobs import JobResult, JobState
from harness.scoring.record import RunAnalysis
from harness.session import BenchmarkRun, BenchmarkSession
from harness.verdicts import FAILED, SKIPPED, Verdict, judge

MARKER = "kbench_phases"
session_key = pytest.StashKey[BenchmarkSession]()
backends_key = pytest.StashKey[list]()
models_key = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_to_pytest(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(*phases): the job phases a benchmark case needs "
                                       f"({', '.join(phases.names())}); what they read is planned with them")
    try:
        config.stash[backends_key] = backend_registry.parse_backends(config.getoption("--backend"))
        config.stash[models_key] = run_labels(
            models.parse(config.getoption("--model"), Path(config.invocation_params.dir)),
            parse_repeats(config.getoption("--repeats")))
        profiles.get(config.getoption("--profile"))
        executors.check_name(config.getoption("--executor"))
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


def _uses_kbench(item: pytest.Item) -> bool:
    return "kbench" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """One model's cases after the other's (its jobs end before the next model's start); no speed
    cases for a profile that times no speed phase."""
    if not any(_uses_kbench(item) for item in items):
        return
    models = config.stash[models_key]
    if len(models) > 1:
        order = {name: i for i, name in enumerate(models)}
        items.sort(key=lambda item: order.get(_case_model(item), 0))
    profile = profiles.get(config.getoption("--profile"))
    untimed = [item for item in items if any(p not in phases.planned(profile) for p in case_phases(item) or ())]
    if untimed:
        config.hook.pytest_deselected(items=untimed)
        items[:] = [item for item in items if item not in untimed]


def case_phases(item: pytest.Item) -> tuple[str, ...] | None:
    """The phases a case declares it needs (its ``kbench_phases`` marker); None: every phase."""
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    for name in marker.args:
        phases.get(name)  # an unknown phase is a usage error naming the valid ones
    return tuple(marker.args)


def needed_phases(items: list) -> tuple[str, ...] | None:
    """The phases the selected cases need (``-k test_speed`` times speed and trains nothing); None: all."""
    needed: set[str] = set()
    for item in items:
        if not _uses_kbench(item):
            continue
        declared = case_phases(item)
        if declared is None:
            return None
        needed.update(declared)
    return tuple(sorted(needed)) if needed else None


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once ``-k``/``-m`` have deselected cases: build the runs, checking every option before the first
    case, each planning only the jobs the remaining cases need."""
    config = session.config
    if not any(_uses_kbench(item) for item in session.items):
        return
    try:
        values = options.values_from(config.getoption)
        values["phases"] = needed_phases(session.items)
        configs = options.build_runs(values, Path(config.rootpath), Path(config.invocation_params.dir))
    except HarnessError as err:
        raise pytest.UsageError(str(err)) from None
    config.stash[session_key] = BenchmarkSession(configs, say=Say(config))


def _case_model(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("model_name") if callspec is not None else None


class Say:
    """Prints a line now, even while pytest captures the test's output."""

    def __init__(self, config: pytest.Config):
        self.plugins = config.pluginmanager

    def __call__(self, message: str) -> None:
        reporter = self.plugins.get_plugin("terminalreporter")
        capture = self.plugins.get_plugin("capturemanager")
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


class KbenchCase:
    """What a benchmark case sees: its run, and ``check`` to judge it."""

    def __init__(self, session: BenchmarkSession, run: BenchmarkRun, request: pytest.FixtureRequest):
        self.session = session
        self.run = run
        self.request = request

    @property
    def config(self):
        return self.run.config

    def start(self) -> None:
        """Start the run (every model checked first); a problem stops the whole pytest session."""
        if self.run.started:
            return
        try:
            self.session.start(self.run)
        except HarnessError as err:
            pytest.exit(f"keras-multibackend: {err}", returncode=pytest.ExitCode.USAGE_ERROR)
        # the report's imports (matplotlib: ~0.5 s) load while the jobs run, not after; only once
        # the run has started: a thread still importing C extensions while a refused session
        # exits can crash the interpreter at shutdown (seen once: exit -11 after the usage error)
        threading.Thread(target=importlib.import_module, args=("harness.report",), daemon=True,
                         name="import-report").start()

    def job(self, backend: str, phase: str) -> JobResult:
        """For a case of your own: how the job ended (run now if needed); the case is skipped with the
        reason if the job was."""
        self.start()
        result = self.run.result(backend, phase)
        if result.state is JobState.SKIPPED:
            pytest.skip(result.reason)
        return result

    def analysis(self) -> RunAnalysis:
        """For a case of your own: the run's analysis (every planned job run first)."""
        self.start()
        return self.run.finish()

    def check(self, case: str, backend: str | None = None) -> Verdict:
        """Judge the case (``harness.verdicts``), record what it measured, and pass, fail or skip."""
        self.start()
        verdict = judge(self.run, case, backend)
        if verdict.rounds is not None or verdict.figures:
            benchmark = self.request.getfixturevalue("benchmark")
            benchmark.extra_info.update(verdict.figures)
            if verdict.rounds is not None:
                record_rounds(benchmark, verdict.rounds)
        if verdict.outcome == SKIPPED:
            pytest.skip(verdict.message)
        if verdict.outcome == FAILED:
            pytest.fail(verdict.message, pytrace=False)
        return verdict


def record_rounds(benchmark: Any, durations: list[float]) -> None:
    """Give pytest-benchmark durations measured elsewhere (a job's wall time, a speed job's step blocks).

    pytest-benchmark has no public way to record an external duration, so its
    fixture is handed a clock that reads the durations (``_timer``, a private
    attribute of the pinned pytest-benchmark 5.3.1). This is the one place
    that does so; if a version no longer works this way, it raises rather
    than record wrong times (``tests/test_plugin.py`` checks it).
    """
    if not hasattr(benchmark, "_timer") or not hasattr(benchmark, "pedantic"):
        raise RuntimeError(f"pytest-benchmark {_benchmark_version()} has no _timer to read recorded durations "
                           "from; install the pinned version (pip install -e .)")
    if getattr(benchmark, "disabled", False):  # --benchmark-disable: pytest-benchmark keeps no figures
        return
    readings = iter([reading for duration in durations for reading in (0.0, float(duration))])
    benchmark._timer = lambda: next(readings)
    benchmark.pedantic(lambda: None, rounds=len(durations), iterations=1, warmup_rounds=0)
    recorded = list(getattr(getattr(benchmark, "stats", None), "stats", None).data or [])
    if [round(r, 9) for r in recorded] != [round(float(d), 9) for d in durations]:
        raise RuntimeError(f"pytest-benchmark {_benchmark_version()} recorded {recorded[:3]}... instead of the "
                           "durations given; install the pinned version (pip install -e .)")


def _benchmark_version() -> str:
    try:
        from importlib.metadata import version

        return version("pytest-benchmark")
    except Exception:  # noqa: BLE001 (only for the message)
        return "(unknown version)"


@pytest.fixture(scope="session")
def kbench_session(request: pytest.FixtureRequest) -> BenchmarkSession:
    """Every run of the session; each that started is ended (history, report) when the session ends."""
    session = request.config.stash.get(session_key, None)
    if session is None:  # a case outside the collected items (e.g. requested dynamically)
        try:
            configs = options.build_runs(options.values_from(request.config.getoption),
                                         Path(request.config.rootpath), Path(request.config.invocation_params.dir))
        except HarnessError as err:
            raise pytest.UsageError(str(err)) from None
        session = BenchmarkSession(configs, say=Say(request.config))
        request.config.stash[session_key] = session
    yield session
    session.end()
    if session.failures:  # a run never ends 0 without its report: CI must not go green with nothing to publish
        pytest.fail("keras-multibackend: " + "; ".join(session.failures), pytrace=False)


@pytest.fixture
def kbench(request: pytest.FixtureRequest, kbench_session: BenchmarkSession) -> KbenchCase:
    """The run of the calling case's model (the only one, unless --model named several)."""
    model = request.getfixturevalue("model_name") if "model_name" in request.fixturenames else None
    return KbenchCase(kbench_session, kbench_session.of(model), request)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On Ctrl-C or SIGTERM, stop every job before fixtures are torn down.

    Runs before pytest tears down the session fixture, which would otherwise
    wait for the remaining jobs. The run folders stay resumable: finished jobs
    keep their results, the rest restart clean on the next session.
    """
    runs = session.config.stash.get(session_key, None)
    if runs is not None and exitstatus == pytest.ExitCode.INTERRUPTED:
        runs.interrupt()


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
        for line in run.end.lines if run.end else ():
            terminalreporter.write_line(line)
        for path in run.end.report_paths if run.end else ():
            terminalreporter.write_line(f"report: {path}")
        terminalreporter.write_line(f"run folder: {run.store.path}")
    for line in runs.lines:
        terminalreporter.write_line(line)
