"""What is checked before any job of a run starts: the shared folder, the data set, the model files.

Each problem is one ``ConfigError`` (or ``DataError``) line naming the fix,
raised before a job is submitted, so nothing a run finished is touched by a
run that cannot start.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from harness import dataset_choice, keras_dataset
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.models import build_check as model_check
from harness.workload import data, environment, layout


def storage_hint(err: OSError, run_id: str) -> str:
    """What to do about a failed write to the shared folder, in a few words."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the shared folder is full: free some space, then run again with --run-id {run_id} to resume"
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "check the shared folder's permissions or pass --shared-dir with another folder"
    return f"check the shared folder, then run again with --run-id {run_id} to resume"


def check_model(config: RunConfig, dataset: dict, say: Callable[[str], None],
                shape: tuple[tuple[int, ...], int] | None = None) -> None:
    """Build a model file of the user's once in the Keras 3 runtime (the seed's is known to build),
    for the data set's image shape and classes (``shape``: from ``check_dataset``, else found now)."""
    if config.model.is_default:
        if shape is not None:
            check_seed_shape(shape[0])
        return
    input_shape, classes = shape or check_dataset(dataset, config, say)
    model_check.check(config.model, input_shape, classes, config.work_dir, say, runtime=config.runtime)


SEED_MIN_SIDE = 10
"""The smallest image side the seed's CNN takes: two 3x3 valid convolutions and two 2x2 poolings leave
nothing of a smaller one."""
SEED_MAX_DENSE_WEIGHTS = 100_000_000
"""The most weights the seed's first dense layer may hold (400 MB in float32): it grows with the image area,
and at CIFAR-10's 32x32 holds 1.2 million."""


def check_seed_shape(input_shape: tuple[int, ...]) -> None:
    """Refuse, once and before any job, images the seed's CNN cannot take (too small) or would drown in (its
    dense layer grows with the image area); the fix is to resize them or give a --model made for them."""
    height, width = int(input_shape[0]), int(input_shape[1])
    if min(height, width) < SEED_MIN_SIDE:
        raise ConfigError(f"the data set's images are {width}x{height}, but the seed's CNN needs at least "
                          f"{SEED_MIN_SIDE}x{SEED_MIN_SIDE}; resize them, or give --model a model file made for them")
    side = [((d - 2) // 2 - 2) // 2 for d in (height, width)]
    dense = 64 * side[0] * side[1] * 512
    if dense > SEED_MAX_DENSE_WEIGHTS:
        raise ConfigError(f"the data set's images are {width}x{height}: the seed's CNN would hold {dense:,} weights "
                          f"in its first dense layer (at most {SEED_MAX_DENSE_WEIGHTS:,}); resize them (CIFAR-10's "
                          "are 32x32), or give --model a model file made for them")


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
    if dataset_choice.is_bundled(config.dataset):
        dataset_choice.check_fits(config.dataset, config.profile)
        say(f"data set: {config.dataset['bundled']} ({config.dataset.get('chosen', 'as asked')}; pass --dataset "
            "keras or --dataset PATH for the whole of CIFAR-10)")
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


def data_fingerprint(dataset: dict, config: RunConfig) -> str | None:
    """The data fingerprint every job of the run will record, for the reuse rule: a result computed on
    other images (the data set folder changed since) is never reused. Read from the cache
    ``check_dataset`` filled; None for ``--dataset keras``, which the first job fetches (CIFAR-10 does
    not change)."""
    if dataset.get("kind") == "keras":
        return None
    arrays = data.load(dataset, str(config.shared_dir), layout.cache_dir(str(config.shared_dir)))
    return data.prepare(arrays, config.profile.to_json(), splits=()).fingerprint


def check_environment() -> None:
    """The job settings a user may give in the environment (``KBENCH_JIT_COMPILE``, ``KBENCH_DATA_FORMAT``),
    read as every job will read them: a bad value is one line now, not a failure inside each job."""
    for read in (environment.jit_compile, lambda: environment.data_format("channels_last")):
        try:
            read()
        except ValueError as err:
            raise ConfigError(f"{err}; fix or unset it before the run") from None


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
