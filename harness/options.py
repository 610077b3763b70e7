"""The option table: every setting of a run, declared once, for ``pytest benchmarks/`` and ``kbench``.

Each ``Option`` (``harness.option_spec``) holds its flag, its one default
and its help; ``register`` adds a group of them to a pytest option group or
an argparse parser, so both front doors show the same names, defaults and
help text. ``build_runs`` turns the values (by ``dest``) into checked
``RunConfig``s, one per model and repeat; every problem is a ``ConfigError``
that names the fix.

Groups:

* ``RUN``: what a benchmark run does (pytest only);
* ``RESULTS``: where a run's results live and how they are judged and shown
  (pytest, and ``kbench report``, which renders a finished run again);
* each executor's own options, from its light module (``harness.executors.options``).

Relative paths a user gives are taken from the current folder; the defaults
of the folder options are relative to the project root (pytest's rootdir;
for ``kbench``, the current folder).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from harness import backends as backend_registry
from harness import baselines, dataset_choice, executors, models, names, phases, profiles, runtimes
from harness.config import (
    RunConfig,
    model_run_id,
    parse_job_timeout,
    parse_positive_int,
    parse_quiet_wait,
    parse_repeats,
    parse_threads,
)
from harness.errors import ConfigError
from harness.option_spec import Option, register
from harness.scoring import variants
from harness.workload import layout

GROUP = "keras-multibackend"
GROUP_TITLE = "Keras multi-backend benchmarks (pytest benchmarks/)"

RUN: tuple[Option, ...] = (
    Option("--backend", f"backends to run: one name, a comma list, or all ({backend_registry.valid_choices()})",
           "all", metavar="NAMES"),
    Option("--executor", f"where jobs run: {', '.join(executors.names())}", "local", metavar="NAME"),
    Option("--runtime", "managed: each Keras line in an environment the harness builds under --work-dir; "
           "current: TensorFlow, JAX and PyTorch in the Python that runs pytest, with whatever versions and "
           "builds it has (Theano and CNTK keep their managed runtime; local executor)", "managed",
           runtimes.check_mode, "managed|current"),
    Option("--model", "the model to benchmark: a shipped one (" + ", ".join(models.shipped())
           + "), the path of a model file (a .py defining build(keras, input_shape, n_classes)), or a comma "
           "list of them: one run each, cases named <model>-<backend>", models.DEFAULT, metavar="NAMES"),
    Option("--profile", "benchmark size: " + "; ".join(f"{p.name}: {p.description}" for p in profiles.PROFILES.values())
           + "; or a .json file with every profile field", "default", metavar="NAME"),
    Option("--dataset", "auto: CIFAR-10 through Keras when it can be had here, else the small CIFAR-10 sample "
           "the harness ships; keras: CIFAR-10 through Keras only; or an image-folder data set (folder or "
           ".tar.gz with train/<class>/, test/<class>/)", None, metavar="PATH",
           default_text=f"${dataset_choice.DATASET_ENV}, else auto"),
    Option("--run-id", "name of the run; an existing run is resumed, finished jobs are not re-run",
           None, metavar="ID", default_text="a new timestamped id"),
    Option("--rerun", "with --run-id of an earlier run: run these jobs again even if they finished, as "
           "BACKEND or BACKEND/PHASE, comma-separated, or all (rerunning train reruns its predict)",
           None, metavar="JOBS"),
    Option("--repeats", "run every backend's training N times, repeat i with train_seed = seed + i - 1 "
           "(runs <run-id>-r1 ...); accuracy and speed are then given as means with 95% intervals, and a "
           "backend is called best only where they separate it", None, metavar="N", default_text="1"),
    Option("--parallel", "jobs to run at once", None, metavar="N", default_text="the executor's choice"),
    Option("--threads", "CPU threads per job", None, metavar="N", default_text="cores / parallel jobs"),
    Option("--speed-threads", "CPU threads of each speed job, the same for every backend; each runs alone",
           None, metavar="N", default_text="1"),
    Option("--job-timeout", "kill a job after this long", None, metavar="SECONDS", default_text="the profile's"),
    Option("--quiet-wait", "each timed job waits at most this long in all for the machine to be quiet (other "
           "processes under a tenth of a core for 3 s before each timed section); a section still timed beside "
           "other work is marked contended", "30", metavar="SECONDS"),
    Option("--work-dir", "machine-local state: runtimes, staged code", ".kbench", metavar="DIR"),
    Option("--record-baseline", "write this run's measured accuracies as the profile's new baseline (checks "
           "are not applied)", False, switch=True),
    Option("--require-baseline", "fail the accuracy checks when the profile has no baseline (or it lacks a "
           "backend); without it they are skipped with a note (for CI)", False, switch=True),
)
"""What a benchmark run does."""

RESULTS: tuple[Option, ...] = (
    Option("--shared-dir", "the shared folder holding runs/, cache/ and history/", ".kbench/shared", metavar="DIR"),
    Option("--reports-dir", "where report.html and report.md are copied, under <run-id>/", "reports/out",
           metavar="DIR"),
    Option("--baselines", "folder of stored expectations, one <profile>.json each ('' checks nothing)",
           "benchmarks/baselines", metavar="DIR"),
    Option("--history-dir", "run history store, one <profile>.jsonl each", None, metavar="DIR",
           default_text="<shared-dir>/history"),
    Option("--ensemble", "the ensemble variant reported as 'the ensemble' and recorded by --record-baseline "
           "(a baseline checks the variant it names): " + ", ".join(variants.NAMES)
           + "; seed = training-accuracy weights, +T = then a temperature fitted on the validation split",
           "seed", metavar="VARIANT"),
    Option("--report-images", "test images in the report's per-image table", "10", metavar="N"),
)
"""Where a run's results live, and how they are judged and shown: shared by pytest and ``kbench report``."""

FOLDER_DEFAULTS = {o.dest: o.default for o in (*RUN, *RESULTS) if o.metavar == "DIR" and o.default}
"""Folder options whose default is a path under the project root."""


def executor_options() -> list[tuple[str, Option]]:
    """Every executor's options with its name, from the executors' light option modules."""
    return [(name, option) for name in executors.names() for option in executors.options(name)]


def all_options() -> list[Option]:
    return [*RUN, *RESULTS, *(option for _, option in executor_options())]


def defaults() -> dict[str, Any]:
    """Each option's default by ``dest``: the one place a default is written."""
    return {option.dest: option.default for option in all_options()}


def add_to_pytest(parser: Any) -> None:
    """Register the whole table in pytest (``pytest_addoption``)."""
    group = parser.getgroup(GROUP, GROUP_TITLE)
    register(group.addoption, (*RUN, *RESULTS))
    for name in executors.names():
        register(group.addoption, executors.options(name), prefix=f"[{name} executor] ")


def add_results_options(parser: Any, suppress_defaults: bool = False) -> None:
    """Register the results group in an argparse parser (``kbench report``)."""
    register(parser.add_argument, RESULTS, suppress_defaults=suppress_defaults)


def add_options(parser: Any, options: Iterable[Option]) -> None:
    register(parser.add_argument, options)


# -- values to runs -------------------------------------------------------------------------
def folder(values: Mapping[str, Any], dest: str, root: Path, cwd: Path) -> Path:
    """A folder option as an absolute path: the default under ``root``, a given path from ``cwd``."""
    value = values.get(dest)
    if value is None or str(value) == FOLDER_DEFAULTS.get(dest):
        return _not_a_file(dest, (root / FOLDER_DEFAULTS[dest]).resolve())
    return _not_a_file(dest, (cwd / Path(_a_path(dest, value)).expanduser()).resolve())


def history_dir(values: Mapping[str, Any], shared: Path, cwd: Path) -> Path:
    given = values.get("history_dir")
    return _not_a_file("history_dir", (cwd / Path(_a_path("history_dir", given)).expanduser()).resolve() if given
                       else Path(layout.history_dir(str(shared))))


def _a_path(dest: str, value: Any) -> str:
    """A folder option's text, refused in one line when no file system could hold it (a null byte)."""
    text = str(value)
    if "\0" in text:
        raise ConfigError(f"--{dest.replace('_', '-')} {text!r} holds a null byte, which no path can; give a folder")
    return text


def _not_a_file(dest: str, path: Path) -> Path:
    """A folder option's path, refused in one line when a file (not a folder) is there (``--baselines`` says
    it its own way, in ``parse_baselines_dir``)."""
    if dest != "baselines" and path.exists() and not path.is_dir():
        flag = "--" + dest.replace("_", "-")
        raise ConfigError(f"{flag} {path} is a file, not a folder; give {flag} a folder (it is made if missing)")
    return path


def baselines_folder(values: Mapping[str, Any], root: Path, cwd: Path) -> Path | None:
    """``--baselines`` as a folder; an empty value checks nothing (None)."""
    if values.get("baselines") in ("", None) and "baselines" in values:
        return None
    return parse_baselines_dir(folder(values, "baselines", root, cwd), cwd)


def parse_baselines_dir(text: str | Path | None, cwd: Path) -> Path | None:
    """The folder of ``<profile>.json`` baselines; a file given in its place is refused."""
    if not text:
        return None
    path = (cwd / Path(text).expanduser()).resolve()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--baselines {text} is a file; give the folder that holds one <profile>.json "
                          "baseline each (default: benchmarks/baselines)")
    return path


def parse_ensemble(name: str) -> str:
    """An ensemble variant's standard name (``fitted+temperature`` -> ``fitted+T``)."""
    try:
        return variants.canonical(name)
    except ValueError as err:
        raise ConfigError(f"--ensemble: {err}") from None


def parse_runtime(value: Any, executor: str) -> str:
    """``--runtime``: ``current`` is this machine's Python, so only the local executor can run it."""
    mode = str(value or defaults()["runtime"])
    try:
        runtimes.check_mode(mode)
    except ValueError as err:
        raise ConfigError(f"--runtime {mode}: {err}") from None
    if mode == "current" and executor != "local":
        raise ConfigError(f"--runtime current runs the backends in the Python that runs pytest, on this "
                          f"machine; the {executor} executor runs its own images: drop --runtime current or "
                          "use --executor local")
    return mode


def parse_report_images(value: Any) -> int:
    return parse_positive_int("--report-images", value) or int(defaults()["report_images"])


def build_runs(values: Mapping[str, Any], root: Path, cwd: Path) -> list[RunConfig]:
    """One checked RunConfig per model of ``--model`` and repeat of ``--repeats``: one run each, so each
    has its own folder, ensemble and report.

    ``values`` are the options by ``dest`` (missing ones take their default).
    With one model the run id is as given (or new); with several, each run's
    id is ``<run-id>-<model>``, so ``--run-id`` resumes all of them together.
    With ``--repeats N`` each model's run is made N times, ``<id>-r1`` to
    ``<id>-rN``, repeat i training with ``train_seed = seed + i - 1`` (the same
    data, other initial weights and shuffles).
    """
    values = {**defaults(), **values}
    executor = executors.check_name(values["executor"])
    count = parse_repeats(values.get("repeats"))
    if values.get("record_baseline") and values.get("require_baseline"):
        raise ConfigError("--record-baseline writes the baseline and --require-baseline checks against one; "
                          "pass only one of them")
    if count > 1 and values.get("record_baseline"):
        raise ConfigError("--record-baseline writes one run's accuracies; record it without --repeats")
    chosen = tuple(backend_registry.parse_backends(values["backend"]))
    runtime = parse_runtime(values.get("runtime"), executor)
    profile = profiles.get(values["profile"])
    specs = models.parse(values.get("model"), cwd)
    shared = folder(values, "shared_dir", root, cwd)
    baselines_dir = baselines_folder(values, root, cwd)
    common = {
        "backends": chosen, "executor": executor, "runtime": runtime, "profile": profile,
        "dataset": dataset_choice.parse(values.get("dataset"), cwd, shared), "shared_dir": shared,
        "work_dir": folder(values, "work_dir", root, cwd), "reports_dir": folder(values, "reports_dir", root, cwd),
        "history_dir": history_dir(values, shared, cwd), "baselines_dir": baselines_dir,
        "parallel": parse_positive_int("--parallel", values.get("parallel")),
        "threads": parse_threads(values.get("threads"), executor),
        "speed_threads": parse_threads(values.get("speed_threads"), executor, option="--speed-threads"),
        "job_timeout_s": parse_job_timeout(values.get("job_timeout")),
        "quiet_wait_s": parse_quiet_wait(values.get("quiet_wait")),
        "ensemble_method": parse_ensemble(values["ensemble"]),
        "report_images": parse_report_images(values.get("report_images")),
        "executor_settings": {o.dest: values.get(o.dest, o.default) for o in executors.options(executor)},
        "record_baseline": bool(values.get("record_baseline")),
        "require_baseline": bool(values.get("require_baseline")),
        "rerun": phases.parse_rerun(values.get("rerun"), [b.name for b in chosen]),
        "phases": tuple(values["phases"]) if values.get("phases") is not None else None,
    }
    for spec in specs:
        if baselines_dir is not None and not common["record_baseline"]:
            path = baselines.path_for(baselines_dir, profile.name, spec.name)
            if path.exists():  # a malformed baseline fails before any job; a missing one is the run's business
                baselines.load(path)
    given = names.check_run_id(values["run_id"]) if values.get("run_id") else None
    if common["rerun"] and given is None:
        raise ConfigError("--rerun runs jobs of an earlier run again: give that run's --run-id (kbench history lists "
                          "them)")
    if len(specs) == 1 and count == 1:
        return [_config(common, specs[0], given or names.new_run_id())]
    base = given or names.new_run_id()
    configs = []
    for spec in specs:
        model_id = base if len(specs) == 1 else model_run_id(base, spec.name)
        if count == 1:
            configs.append(_config(common, spec, model_id))
            continue
        for repeat in range(1, count + 1):
            config = _config(common, spec, model_run_id(model_id, f"r{repeat}"))
            trained = dataclasses.replace(config.profile, train_seed=config.profile.seed + repeat - 1)
            configs.append(dataclasses.replace(config, profile=trained, repeat=repeat, repeat_of=model_id))
    return configs


def _config(common: dict[str, Any], spec: models.ModelSpec, run_id: str) -> RunConfig:
    baseline_path = (baselines.path_for(common["baselines_dir"], common["profile"].name, spec.name)
                     if common["baselines_dir"] is not None else None)
    return RunConfig(model=spec, run_id=run_id, baseline_path=baseline_path, **common)


def build_run(cwd: Path, root: Path | None = None, **values: Any) -> RunConfig:
    """One RunConfig from options given as keyword arguments by ``dest`` (for tests and notebooks)."""
    configs = build_runs(values, root or cwd, cwd)
    if len(configs) != 1:
        raise ConfigError(f"these options make {len(configs)} runs; use build_runs for several")
    return configs[0]


def values_from(get: Callable[[str], Any]) -> dict[str, Any]:
    """Every option's value by ``dest``, read through ``get`` (pytest's ``config.getoption``)."""
    return {option.dest: get(option.dest) for option in all_options()}
