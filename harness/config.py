"""A run's settings, typed and checked as they are read.

The pytest plugin turns its options into a ``RunConfig`` through ``build``;
every problem is a ``ConfigError`` whose message names the fix.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import backends as backend_registry
from harness import baselines, history, model_files, profiles
from harness.backends import Backend
from harness.errors import ConfigError
from harness.executors import executor_class
from harness.model_files import ModelSpec
from harness.profiles import Profile
from harness.rundir import check_run_id, new_run_id
from harness.scoring import variants
from harness.workload.layout import PHASES

DATASET_ENV = "KBENCH_DATASET"
KERAS_NAMES = ("keras", "cifar10", "keras:cifar10")


@dataclass(frozen=True)
class RunConfig:
    """Everything one benchmark session was asked to do."""

    backends: tuple[Backend, ...]
    profile: Profile
    executor: str
    dataset: dict
    """run.json form: ``{"kind": "keras"}`` or ``{"kind": "path", "path": <absolute>}``."""
    shared_dir: Path
    run_id: str
    work_dir: Path
    """Machine-local state: runtimes, staged workload code."""
    reports_dir: Path
    parallel: int | None = None
    threads: int | None = None
    speed_threads: int | None = None
    """Threads of every speed job (each runs alone); None: 1, the same for every backend."""
    job_timeout_s: float | None = None
    ensemble_method: str = "seed"
    """The ensemble variant shown as "the ensemble" and recorded by --record-baseline."""
    history_dir: Path | None = None
    """The run history store; None means ``<shared_dir>/history``."""
    report_images: int = 10
    """Test images in the report's per-image table."""
    executor_settings: dict[str, Any] = field(default_factory=dict)
    baselines_dir: Path | None = None
    """Folder of stored expectations, one ``<profile>.json`` each; None: nothing is checked."""
    record_baseline: bool = False
    """Write this run's accuracies as the profile's baseline instead of checking them."""
    require_baseline: bool = False
    """Fail, rather than skip, the accuracy checks a missing baseline (or entry) leaves unchecked."""
    rerun: frozenset[tuple[str, str]] = frozenset()
    """(backend, phase) jobs to run again even if an earlier session finished them (--rerun)."""
    model: ModelSpec = field(default_factory=lambda: model_files.resolve(model_files.DEFAULT, Path.cwd()))
    """The model every job of the run builds (--model); the seed's CNN by default."""
    repeat: int = 0
    """Which of ``--repeats`` runs this is (1, 2, ...); 0: the session repeats nothing."""
    phases: tuple[str, ...] | None = None
    """The phases the selected benchmark cases need (``-k test_speed``: only the speed phase);
    None: every phase the profile plans."""

    @property
    def label(self) -> str:
        """How the benchmark cases name this run: the model, ``r2`` or ``resnet-small-r2`` for a repeat."""
        return run_label(self.model.name, self.model.is_default, self.repeat)

    @property
    def timeout_s(self) -> float:
        return self.job_timeout_s or self.profile.job_timeout_s

    @property
    def history_store(self) -> Path:
        """The run history folder: ``--history-dir``, else ``<shared>/history``."""
        return self.history_dir or history.default_dir(self.shared_dir)

    @property
    def baseline_path(self) -> Path | None:
        """This profile and model's baseline file, or None when no baseline folder was given."""
        if self.baselines_dir is None:
            return None
        return baselines.path_for(Path(self.baselines_dir), self.profile.name, self.model.name)


def parse_dataset(text: str | None, cwd: Path) -> dict:
    """``keras`` (download CIFAR-10) or the path of an image-folder data set."""
    text = (text or os.environ.get(DATASET_ENV) or "keras").strip()
    if text.lower() in KERAS_NAMES:
        return {"kind": "keras"}
    path = (cwd / os.path.expanduser(text)).resolve()
    if not path.exists():
        raise ConfigError(
            f"data set {text} does not exist; pass --dataset with an image-folder data set (a folder or "
            ".tar.gz laid out train/<class>/*.jpg, test/<class>/*.jpg) or --dataset keras to download CIFAR-10")
    if path.is_file() and not (path.name.endswith((".tar.gz", ".tgz", ".tar"))):
        raise ConfigError(f"data set {text} is a file but not a .tar.gz or .tar archive; give a folder or an archive")
    return {"kind": "path", "path": str(path)}


def parse_positive_int(name: str, value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if number < 1:
        raise ConfigError(f"{name} must be at least 1, not {number}")
    return number


THREADS_PER_CORE = 4
"""Local executor: --threads above cores x this is refused. More threads than that only contend
for the cores (and for memory: each has its own stack and BLAS buffers), so it is a typo."""
MAX_REMOTE_THREADS = 256
"""Other executors run jobs on other machines, whose cores this one cannot count: refuse only
what no single node has."""


def parse_threads(value: Any, executor: str = "local", cores: int | None = None,
                  option: str = "--threads") -> int | None:
    threads = parse_positive_int(option, value)
    if threads is None:
        return None
    if executor != "local":
        if threads > MAX_REMOTE_THREADS:
            raise ConfigError(f"{option} {threads} is more than any one node has; pass {option} "
                              f"{MAX_REMOTE_THREADS} or fewer (a job's threads share one node's cores)")
        return threads
    cores = cores or os.cpu_count() or 1
    if threads > cores * THREADS_PER_CORE:
        raise ConfigError(f"{option} {threads} is more than {THREADS_PER_CORE} per core of this machine's "
                          f"{cores} cores; more only makes the jobs contend, so pass {option} "
                          f"{cores * THREADS_PER_CORE} or fewer")
    return threads


def build(
    *,
    backend: str,
    profile: str,
    executor: str,
    dataset: str | None,
    shared_dir: str | Path,
    run_id: str | None,
    work_dir: str | Path,
    reports_dir: str | Path,
    cwd: Path,
    parallel: Any = None,
    threads: Any = None,
    speed_threads: Any = None,
    job_timeout: Any = None,
    ensemble_method: str = "seed",
    history_dir: str | Path | None = None,
    report_images: Any = None,
    executor_settings: dict[str, Any] | None = None,
    baselines_dir: str | Path | None = None,
    record_baseline: bool = False,
    require_baseline: bool = False,
    rerun: str | None = None,
    model: str | ModelSpec | None = None,
) -> RunConfig:
    executor_class(executor)  # an unknown executor fails here, listing the valid ones
    timeout = None
    if job_timeout not in (None, ""):
        try:
            timeout = float(job_timeout)
        except ValueError:
            raise ConfigError(f"--job-timeout must be a number of seconds, not {job_timeout!r}") from None
        if not math.isfinite(timeout) or timeout <= 0:
            raise ConfigError(f"--job-timeout must be a finite number of seconds above 0, not {job_timeout!r}")
    if record_baseline and require_baseline:
        raise ConfigError("--record-baseline writes the baseline and --require-baseline checks against one; "
                          "pass only one of them")
    chosen = tuple(backend_registry.parse_backends(backend))
    chosen_profile = profiles.get(profile)
    spec = model if isinstance(model, ModelSpec) else model_files.resolve(model or model_files.DEFAULT, cwd)
    baselines_path = parse_baselines_dir(baselines_dir, cwd)
    if baselines_path is not None and not record_baseline:
        check_baseline_file(baselines_path, chosen_profile.name, spec.name)
    return RunConfig(
        backends=chosen,
        profile=chosen_profile,
        executor=executor,
        dataset=parse_dataset(dataset, cwd),
        shared_dir=(cwd / Path(shared_dir).expanduser()).resolve(),
        run_id=check_run_id(run_id) if run_id else new_run_id(),
        work_dir=(cwd / Path(work_dir).expanduser()).resolve(),
        reports_dir=(cwd / Path(reports_dir).expanduser()).resolve(),
        parallel=parse_positive_int("--parallel", parallel),
        threads=parse_threads(threads, executor),
        speed_threads=parse_threads(speed_threads, executor, option="--speed-threads"),
        job_timeout_s=timeout,
        ensemble_method=parse_ensemble(ensemble_method),
        history_dir=(cwd / Path(history_dir).expanduser()).resolve() if history_dir else None,
        report_images=parse_positive_int("--report-images", report_images) or 10,
        executor_settings=dict(executor_settings or {}),
        baselines_dir=baselines_path,
        record_baseline=bool(record_baseline),
        require_baseline=bool(require_baseline),
        rerun=parse_rerun(rerun, [b.name for b in chosen]),
        model=spec,
    )


def build_all(*, model: str | None = None, run_id: str | None = None, repeats: Any = None,
              **options: Any) -> list[RunConfig]:
    """One RunConfig per model of ``--model`` and repeat: one run each, so each has its own folder,
    ensemble and report.

    With one model the run id is as given (or new); with several, each run's id
    is ``<run-id>-<model>``, so ``--run-id`` resumes all of them together. With
    ``--repeats N`` each model's run is made N times, ``<id>-r1`` to ``<id>-rN``,
    repeat i training with ``train_seed = seed + i - 1`` (the same data, other
    initial weights and shuffles).
    """
    count = parse_positive_int("--repeats", repeats) or 1
    if count > MAX_REPEATS:
        raise ConfigError(f"--repeats {count} is more than {MAX_REPEATS}; a 95% interval of the mean is already "
                          "narrow at 10 repeats")
    if count > 1 and options.get("record_baseline"):
        raise ConfigError("--record-baseline writes one run's accuracies; record it without --repeats")
    specs = model_files.parse(model, options["cwd"])
    if len(specs) == 1 and count == 1:
        return [build(model=specs[0], run_id=run_id, **options)]
    base = check_run_id(run_id) if run_id else new_run_id()
    configs = []
    for spec in specs:
        model_id = base if len(specs) == 1 else model_run_id(base, spec.name)
        if count == 1:
            configs.append(build(model=spec, run_id=model_id, **options))
            continue
        for repeat in range(1, count + 1):
            config = build(model=spec, run_id=model_run_id(model_id, f"r{repeat}"), **options)
            profile = dataclasses.replace(config.profile, train_seed=config.profile.seed + repeat - 1)
            configs.append(dataclasses.replace(config, profile=profile, repeat=repeat))
    return configs


MAX_REPEATS = 20


def run_label(model: str, is_default: bool, repeat: int) -> str:
    """A run's name in case ids: the model; for a repeat ``r2`` (the seed's CNN) or ``resnet-small-r2``."""
    if not repeat:
        return model
    return f"r{repeat}" if is_default else f"{model}-r{repeat}"


def run_labels(models: list[ModelSpec], repeats: int) -> list[str]:
    """Every run's label, in the order ``build_all`` makes the runs."""
    if repeats <= 1:
        return [spec.name for spec in models]
    return [run_label(spec.name, spec.is_default, i) for spec in models for i in range(1, repeats + 1)]


def model_run_id(base: str, model: str) -> str:
    """A model's (or a repeat's) run of a several-run session: ``<run-id>-<model>``, checked as a run id."""
    run_id = f"{base}-{model}"
    if len(run_id) > 40:
        raise ConfigError(f"--run-id {base} with {model} makes the run id {run_id}, over 40 characters; "
                          "choose a shorter --run-id")
    return check_run_id(run_id)


def parse_baselines_dir(text: str | Path | None, cwd: Path) -> Path | None:
    """The folder of ``<profile>.json`` baselines; a file given in its place is refused."""
    if not text:
        return None
    path = (cwd / Path(text).expanduser()).resolve()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--baselines {text} is a file; give the folder that holds one <profile>.json "
                          "baseline each (default: benchmarks/baselines)")
    return path


def check_baseline_file(folder: Path, profile: str, model: str = model_files.DEFAULT) -> None:
    """A malformed baseline fails before any job starts; a missing one is the run's business (skip or fail)."""
    path = baselines.path_for(folder, profile, model)
    if path.exists():
        baselines.load(path)


AFTER_TRAIN = ("train", "predict", "fidelity")
"""A rerun of train reruns these: they read its weights (speed needs none)."""


def parse_rerun(text: str | None, backends: list[str]) -> frozenset[tuple[str, str]]:
    """``--rerun BACKEND[/PHASE],...`` as (backend, phase) pairs; train always brings its later phases.

    A backend alone means every phase; ``all`` means every chosen backend. A
    predict or fidelity job run on new weights would otherwise be reused with
    outputs of the old ones, so rerunning train reruns them too (the session
    also reruns every backend's fidelity job then: each ran every member's weights).
    """
    if not text or not text.strip():
        return frozenset()
    usage = (f"--rerun takes BACKEND or BACKEND/PHASE (phase: {', '.join(PHASES)}), comma-separated, or all; "
             f"backends of this run: {', '.join(backends)}")
    jobs: set[tuple[str, str]] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, phase = item.partition("/")
        name, phase = name.strip().lower(), phase.strip().lower()
        names = backends if name == "all" else [name]
        if name != "all" and name not in backends:
            raise ConfigError(f"--rerun {item!r}: {name!r} is not a backend of this run; {usage}")
        if phase not in ("", *PHASES):
            raise ConfigError(f"--rerun {item!r}: unknown phase {phase!r}; {usage}")
        for backend in names:
            jobs.update((backend, p) for p in (PHASES if phase == "" else AFTER_TRAIN if phase == "train"
                                               else (phase,)))
    return frozenset(jobs)


def parse_ensemble(name: str) -> str:
    """An ensemble variant's standard name (``fitted+temperature`` -> ``fitted+T``)."""
    try:
        return variants.canonical(name)
    except ValueError as err:
        raise ConfigError(f"--ensemble: {err}") from None
