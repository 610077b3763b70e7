"""What ``--dataset`` names: ``auto`` (the default), ``keras``, or the path of an image-folder data set.

``auto`` takes the real CIFAR-10 through Keras when it can be had on this
machine (decoded already, in Keras's download cache, or its origin
reachable: ``harness.keras_dataset``) and the CIFAR-10 sample the harness
ships otherwise (``harness.bundled_data``), so a first run works offline.
The choice is made once, when the run is configured, and recorded in
``run.json`` with why; a resumed run must make the same one.
"""
from __future__ import annotations

import os
from pathlib import Path

from harness import bundled_data, keras_dataset
from harness.errors import ConfigError, DataError
from harness.workload import data, layout

DATASET_ENV = "KBENCH_DATASET"
KERAS_NAMES = ("keras", "cifar10", "keras:cifar10")
AUTO = "auto"


def parse(text: str | None, cwd: Path, shared: Path) -> dict:
    """The data set a run reads, in run.json's form (``{"kind": "keras"}`` or ``{"kind": "path", ...}``)."""
    text = (text or os.environ.get(DATASET_ENV) or AUTO).strip()
    if text.lower() == AUTO:
        return auto(shared)
    if text.lower() in KERAS_NAMES:
        return {"kind": "keras"}
    path = (cwd / os.path.expanduser(text)).resolve()
    if not path.exists():
        raise ConfigError(
            f"data set {text} does not exist; pass --dataset with an image-folder data set (a folder or "
            ".tar.gz laid out train/<class>/*.jpg, test/<class>/*.jpg), --dataset keras to download CIFAR-10, "
            "or --dataset auto")
    if path.is_file() and not (path.name.endswith((".tar.gz", ".tgz", ".tar"))):
        raise ConfigError(f"data set {text} is a file but not a .tar.gz or .tar archive; give a folder or an archive")
    return {"kind": "path", "path": str(path)}


def auto(shared: Path) -> dict:
    """CIFAR-10 through Keras when it can be had here, else the bundled sample (with why)."""
    decoded = Path(layout.dataset_cache_dir(layout.cache_dir(str(shared)), data.source_key("keras", None)))
    try:
        keras_dataset.check_available(decoded)
        return {"kind": "keras"}
    except DataError as err:
        why = str(err).split(";")[0]
    bundled_data.check()
    return {"kind": "path", "path": str(bundled_data.SAMPLE), "bundled": bundled_data.describe(),
            "chosen": f"--dataset auto: {why}"}


def is_bundled(dataset: dict) -> bool:
    return bool(dataset.get("bundled"))


def check_fits(dataset: dict, profile) -> None:
    """A profile that needs more images than the bundled sample holds is refused, naming the fix.

    A profile that takes "all" of a split (``n_train`` or ``n_test`` null) means all of CIFAR-10, which the
    sample is not.
    """
    if not is_bundled(dataset):
        return
    counts = bundled_data.provenance().get("images", {})
    train, test = counts.get("train", 0), counts.get("test", 0)
    wants_all = profile.n_train is None or profile.n_test is None
    if wants_all or profile.n_train + profile.n_val > train or profile.n_test > test:
        asked = ("every CIFAR-10 image" if wants_all else
                 f"{profile.n_train + profile.n_val:,} training and {profile.n_test:,} test images")
        raise DataError(f"profile {profile.name} needs {asked}, but the bundled CIFAR-10 sample holds "
                        f"{train:,} training and {test:,} test images ({dataset.get('chosen', 'chosen')}); use "
                        "--profile default or smoke with the sample, or --dataset keras (online) or --dataset "
                        "PATH with the whole of CIFAR-10")
