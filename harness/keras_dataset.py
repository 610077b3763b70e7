"""Whether ``--dataset keras`` (the real CIFAR-10 download) can be had on this machine.

Jobs load it through ``keras.datasets.cifar10``, which downloads it once into
Keras's cache folder. Offline, that fails inside every job, after each
runtime has started. The harness answers the question once, before any job
starts, without importing Keras: the data is ready when the run's shared
cache already holds it decoded, or Keras's own cache holds the download, or
the download's origin answers. Otherwise it fails in one line naming the fix.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

from harness.errors import DataError

ORIGIN_HOST = "www.cs.toronto.edu"
"""Where ``keras.datasets.cifar10`` downloads from (Keras 2.3.1 and 3 alike), over HTTPS."""
ORIGIN_PORT = 443
CACHE_NAMES = ("cifar-10-batches-py", "cifar-10-python")
"""Names under ``<keras home>/datasets/`` that mean the download is there (Keras 3 adds suffixes)."""


def keras_homes() -> list[Path]:
    """Keras's cache folders: ``$KERAS_HOME``, else ``~/.keras``, and ``/tmp/.keras`` (its fallback)."""
    homes = [Path(os.environ["KERAS_HOME"])] if os.environ.get("KERAS_HOME") else []
    homes += [Path.home() / ".keras", Path("/tmp/.keras")]
    return homes


def cached_download(homes: list[Path] | None = None) -> Path | None:
    """The CIFAR-10 download in a Keras cache folder, if one holds it."""
    for home in homes if homes is not None else keras_homes():
        folder = home / "datasets"
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(CACHE_NAMES):
                return entry
    return None


def origin_reachable(host: str = ORIGIN_HOST, port: int = ORIGIN_PORT, timeout_s: float = 3.0) -> str | None:
    """None when a TCP connection to the origin opens; otherwise why it did not."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as err:
        return err.strerror or type(err).__name__


def check_available(decoded_cache: Path, homes: list[Path] | None = None,
                    reach: Callable[[], str | None] = origin_reachable) -> str:
    """How the jobs will get CIFAR-10 (a short phrase); raises ``DataError`` when they cannot."""
    if (decoded_cache / "meta.json").is_file():
        return f"already decoded in {decoded_cache}"
    cached = cached_download(homes)
    if cached is not None:
        return f"Keras's download cache {cached}"
    why = reach()
    if why is None:
        return f"a download from {ORIGIN_HOST}"
    raise DataError(
        f"--dataset keras needs the CIFAR-10 download, but it is not in Keras's cache (~/.keras/datasets) "
        f"and {ORIGIN_HOST} cannot be reached ({why}); offline, pass --dataset PATH with an image-folder "
        "copy (a folder or .tar.gz of train/<class>/*, test/<class>/*)")
