"""A run's settings, typed: what one benchmark run was asked to do.

Built from the option table (``harness.options.build_runs``), where every
option is declared once and every value is checked as it is read. This
module sits near the ground floor: it knows the backends, profiles and model
files, and the few rules that need nothing more (bounds of whole numbers and
thread counts, how the runs of a several-model session are named).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import names
from harness.backends import Backend
from harness.errors import ConfigError
from harness.models.spec import ModelSpec
from harness.profiles import Profile


@dataclass(frozen=True)
class RunConfig:
    """Everything one benchmark run was asked to do, every value checked and every path absolute."""

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
    history_dir: Path
    """The run history store (``--history-dir``, else ``<shared_dir>/history``)."""
    model: ModelSpec
    """The model every job of the run builds (--model)."""
    ensemble_method: str
    """The ensemble variant shown as "the ensemble" and recorded by --record-baseline."""
    report_images: int
    """Test images in the report's per-image table."""
    quiet_wait_s: float
    """How long a timed section waits for a quiet machine (``--quiet-wait``)."""
    baselines_dir: Path | None = None
    """Folder of stored expectations, one ``<profile>.json`` each; None: nothing is checked."""
    baseline_path: Path | None = None
    """This profile and model's baseline file in ``baselines_dir`` (None without one)."""
    parallel: int | None = None
    threads: int | None = None
    speed_threads: int | None = None
    """Threads of every job that runs alone (speed); None: 1, the same for every backend."""
    job_timeout_s: float | None = None
    runtime: str = "managed"
    """Where the Keras 3 backends run: ``managed`` (the harness's runtimes) or ``current`` (the Python
    that runs the harness, as it is); Keras 2's backends always run in their managed runtime."""
    executor_settings: dict[str, Any] = field(default_factory=dict)
    record_baseline: bool = False
    """Write this run's accuracies as the profile's baseline instead of checking them."""
    require_baseline: bool = False
    """Fail, rather than skip, the accuracy checks a missing baseline (or entry) leaves unchecked."""
    rerun: frozenset[tuple[str, str]] = frozenset()
    """(backend, phase) jobs to run again even if an earlier session finished them (--rerun)."""
    repeat: int = 0
    """Which of ``--repeats`` runs this is (1, 2, ...); 0: the session repeats nothing."""
    repeat_of: str | None = None
    """The run id the repeats of one model share (``nightly`` for ``nightly-r1`` ...); None: not a repeat."""
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


def parse_job_timeout(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        timeout = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--job-timeout must be a number of seconds, not {value!r}") from None
    if not math.isfinite(timeout) or timeout <= 0:
        raise ConfigError(f"--job-timeout must be a finite number of seconds above 0, not {value!r}")
    return timeout


MAX_QUIET_WAIT_S = 3600.0


def parse_quiet_wait(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--quiet-wait must be a number of seconds, not {value!r}") from None
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_QUIET_WAIT_S:
        raise ConfigError(f"--quiet-wait must be from 0 to {MAX_QUIET_WAIT_S:.0f} seconds, not {value!r}")
    return seconds


MAX_REPEATS = 20


def parse_repeats(value: Any) -> int:
    count = parse_positive_int("--repeats", value) or 1
    if count > MAX_REPEATS:
        raise ConfigError(f"--repeats {count} is more than {MAX_REPEATS}; a 95% interval of the mean is already "
                          "narrow at 10 repeats")
    return count


def run_label(model: str, is_default: bool, repeat: int) -> str:
    """A run's name in case ids: the model; for a repeat ``r2`` (the seed's CNN) or ``resnet-small-r2``."""
    if not repeat:
        return model
    return f"r{repeat}" if is_default else f"{model}-r{repeat}"


def run_labels(models: list[ModelSpec], repeats: int) -> list[str]:
    """Every run's label, in the order ``harness.options.build_runs`` makes the runs."""
    if repeats <= 1:
        return [spec.name for spec in models]
    return [run_label(spec.name, spec.is_default, i) for spec in models for i in range(1, repeats + 1)]


def model_run_id(base: str, model: str) -> str:
    """A model's (or a repeat's) run of a several-run session: ``<run-id>-<model>``, checked as a run id."""
    run_id = f"{base}-{model}"
    if len(run_id) > 40:
        raise ConfigError(f"--run-id {base} with {model} makes the run id {run_id}, over 40 characters; "
                          "choose a shorter --run-id")
    return names.check_run_id(run_id)
