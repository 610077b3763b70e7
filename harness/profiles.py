"""Benchmark profiles: how much data, how many epochs, how long a job may take.

Every backend of a run uses the same profile, so every backend sees the same
images in the same order and the same number of optimisation steps.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from harness import names
from harness.errors import ConfigError


@dataclass(frozen=True)
class Profile:
    """The size of one benchmark run."""

    name: str
    description: str
    n_train: int | None
    """Training images (a seeded, stratified subset); ``None`` means all."""
    n_val: int
    """Images held out of the training set for validation (0: train on all)."""
    n_test: int | None
    """Test images (a seeded, stratified subset); ``None`` means all."""
    epochs: int
    batch_size: int
    learning_rate: float
    """RMSprop's learning rate; the seed uses 1e-4."""
    predict_batch_size: int
    job_timeout_s: float
    """A job still running after this long is killed and reported as timed out."""
    seed: int = 20170318
    speed_steps: int = 0
    """Training steps the speed phase times, each backend alone on the machine, after a
    short warm-up; 0 plans no speed phase (a profile file without the field)."""
    speed_predict_batches: int = 20
    """Inference batches (of ``predict_batch_size``) the speed phase times."""
    train_seed: int | None = None
    """Seed of the weights' initialisation and of each epoch's shuffle; None: ``seed``. The data
    subsets always come from ``seed``, so repeats (``--repeats``) differ only in training."""
    serve_seconds: float = 0.0
    """Seconds the serve phase's SingleStream run lasts at least (LoadGen's ``min_duration``; its
    validity rule asks for 10 s); 0 plans no serve phase (a profile file without the field)."""
    serve_sweep_seconds: float = 1.0
    """Seconds of answering each Offline batch size, and of queries scheduled at each Server rate, at least."""
    serve_min_queries: int = 100
    """Queries each SingleStream run and each Server rate issues at least (LoadGen's ``min_query_count``)."""
    serve_max_batch: int = 512
    """The largest batch of the Offline sweep (1, 8, 32, 128, 512, up to this)."""
    serve_rate_trials: int = 8
    """Offered rates the Server's peak search tries at most (each a Server run of its own)."""
    serve_p99_bound_ms: float = 15.0
    """The Server's latency bound: the peak rate is the highest whose p99 latency, queueing included,
    stays within it. 15 ms is MLPerf's bound for ResNet-50 (``mlperf.conf``: ``resnet50.Server.target_latency``)."""

    @property
    def training_seed(self) -> int:
        return self.seed if self.train_seed is None else self.train_seed

    def to_json(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="smoke",
            description="CI check: 1,000 training images, 3 epochs; seconds per job.",
            n_train=1000,
            n_val=200,
            n_test=500,
            epochs=3,
            batch_size=32,
            learning_rate=1e-3,
            predict_batch_size=100,
            job_timeout_s=900,
            speed_steps=60,
            speed_predict_batches=10,
            serve_seconds=1.0,
            serve_sweep_seconds=0.25,
            serve_max_batch=128,
            serve_rate_trials=4,
        ),
        Profile(
            name="default",
            description="Every backend in a few minutes on a 2-core laptop: 5,000 training images, 4 epochs.",
            n_train=5000,
            n_val=1000,
            n_test=2000,
            epochs=4,
            batch_size=32,
            learning_rate=1e-3,
            predict_batch_size=100,
            job_timeout_s=3600,
            speed_steps=150,
            speed_predict_batches=30,
            serve_seconds=10.0,
            serve_sweep_seconds=2.0,
            serve_rate_trials=6,
        ),
        Profile(
            name="standard",
            description="Where the ensemble effect shows on a CPU: all 50,000 training images "
            "(5,000 held out for calibration), all 10,000 test images, 10 epochs at the seed's "
            "learning rate; about an hour and a half for five backends on 2 cores.",
            n_train=None,
            n_val=5000,
            n_test=None,
            epochs=10,
            batch_size=32,
            learning_rate=1e-4,
            predict_batch_size=100,
            job_timeout_s=6 * 3600,
            speed_steps=150,
            speed_predict_batches=30,
            serve_seconds=10.0,
            serve_sweep_seconds=10.0,
            serve_rate_trials=8,
        ),
        Profile(
            name="full",
            description="The seed's setting: all 50,000 training images, the seed's optimiser, "
            "enough epochs to reach its accuracy (hours per backend on a CPU).",
            n_train=None,
            n_val=0,
            n_test=None,
            epochs=50,
            batch_size=32,
            learning_rate=1e-4,
            predict_batch_size=100,
            job_timeout_s=7 * 24 * 3600,
            speed_steps=300,
            speed_predict_batches=50,
            serve_seconds=60.0,
            serve_sweep_seconds=10.0,
            serve_rate_trials=10,
        ),
    )
}


def get(name: str) -> Profile:
    """A profile by name, or from a JSON file holding every ``Profile`` field."""
    if name in PROFILES:
        return PROFILES[name]
    if name.endswith(".json"):
        return from_file(Path(name))
    raise ConfigError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}, or give a .json file")


def from_file(path: Path) -> Profile:
    fix = f"give every field of a profile ({', '.join(f.name for f in fields(Profile))})"
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"profile file {path} does not exist; {fix} in a JSON file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the profile file {path} ({err}); {fix} in a JSON file") from None
    except ValueError as err:
        raise ConfigError(f"profile file {path} is not valid JSON ({err}); {fix}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"profile file {path} must hold a JSON object; {fix}")
    known = {f.name for f in fields(Profile)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"profile file {path} has unknown field(s) {', '.join(unknown)}; {fix}")
    try:
        profile = Profile(**values)
    except TypeError as err:
        raise ConfigError(f"profile file {path} is incomplete ({err}); {fix}") from None
    problem = field_problem(profile)
    if problem:
        raise ConfigError(f"profile file {path}: {problem}")
    return profile


MAX_SEED = 2**32 - 1
"""numpy's RandomState takes seeds below 2**32; the jobs seed each epoch with ``seed + epoch``."""
MAX_COUNT = 10**9
"""Above any real image count or epoch count; keeps arithmetic on the fields ordinary."""


def _whole(value: Any, least: int, most: int = MAX_COUNT) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= most


def _real(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


MAX_SERVE_SECONDS = 24 * 3600.0
"""Longer than any serving run; keeps a typo (a duration in milliseconds) from running for days."""


def _seconds(value: Any, zero: bool = False) -> bool:
    if zero and isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return True
    return _real(value) and value <= MAX_SERVE_SECONDS


def field_problem(profile: Profile) -> str | None:
    """The first field of ``profile`` with the wrong type or range, as one sentence; None if sound.

    Every field is checked here, before any job starts, so that a bad value is
    never a traceback, a job failing inside, or a run doing nonsense.
    """
    if not names.is_safe(profile.name):
        return (f"name {profile.name!r} is not a safe name (it names the history and baseline files); "
                f"{names.RULE}")
    if not isinstance(profile.description, str):
        return "description must be a string"
    checks = (
        ("n_train", profile.n_train is None or _whole(profile.n_train, 1),
         "a whole number of at least 1, or null for all training images"),
        ("n_val", _whole(profile.n_val, 0), "a whole number of at least 0 (0: no validation split)"),
        ("n_test", profile.n_test is None or _whole(profile.n_test, 1),
         "a whole number of at least 1, or null for all test images"),
        ("epochs", _whole(profile.epochs, 1, 100_000), "a whole number from 1 to 100000"),
        ("batch_size", _whole(profile.batch_size, 1), "a whole number of at least 1"),
        ("predict_batch_size", _whole(profile.predict_batch_size, 1), "a whole number of at least 1"),
        ("learning_rate", _real(profile.learning_rate), "a finite number above 0 (the seed uses 1e-4)"),
        ("job_timeout_s", _real(profile.job_timeout_s), "a finite number of seconds above 0"),
        ("speed_steps", _whole(profile.speed_steps, 0, 100_000),
         "a whole number from 0 to 100000 (0: no speed phase)"),
        ("speed_predict_batches", _whole(profile.speed_predict_batches, 1, 100_000),
         "a whole number from 1 to 100000"),
        ("seed", _whole(profile.seed, 0, MAX_SEED - 100_000),
         f"a whole number from 0 to {MAX_SEED - 100_000} (numpy seeds stop at 2**32; each epoch adds 1)"),
        ("train_seed", profile.train_seed is None or _whole(profile.train_seed, 0, MAX_SEED - 100_000),
         f"null or a whole number from 0 to {MAX_SEED - 100_000}"),
        ("serve_seconds", _seconds(profile.serve_seconds, zero=True),
         f"a number of seconds from 0 to {MAX_SERVE_SECONDS:g} (0: no serve phase)"),
        ("serve_sweep_seconds", _seconds(profile.serve_sweep_seconds),
         f"a number of seconds above 0, at most {MAX_SERVE_SECONDS:g}"),
        ("serve_min_queries", _whole(profile.serve_min_queries, 1, 10_000_000), "a whole number from 1 to 10000000"),
        ("serve_max_batch", _whole(profile.serve_max_batch, 1, 1_000_000), "a whole number from 1 to 1000000"),
        ("serve_rate_trials", _whole(profile.serve_rate_trials, 1, 100), "a whole number from 1 to 100"),
        ("serve_p99_bound_ms", _real(profile.serve_p99_bound_ms) and profile.serve_p99_bound_ms <= 3_600_000,
         "a finite number of milliseconds above 0 (MLPerf's ResNet-50 bound is 15)"),
    )
    for key, ok, rule in checks:
        if not ok:
            return f"{key} must be {rule}, not {getattr(profile, key)!r}"
    return None
