"""The small CIFAR-10 sample the harness ships, so that a first run works on any machine, offline too.

``harness/data/cifar10-sample.tar.gz`` holds real CIFAR-10 images (a
stratified draw from the training and test splits, the source's own JPEG
bytes) in the image-folder layout every job reads; ``cifar10-sample.json``
says where they came from, how they were drawn and the archive's SHA-256
(``benchmarks/make_cifar10_sample.py`` makes both). It fills the ``smoke``
and ``default`` profiles: a pipeline check, not a benchmark of accuracy (a
larger profile is refused before any job, naming the fix).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.errors import DataError

DATA_DIR = Path(__file__).resolve().parent / "data"
SAMPLE = DATA_DIR / "cifar10-sample.tar.gz"
PROVENANCE = DATA_DIR / "cifar10-sample.json"
NOTE = "pipeline check, not a benchmark of accuracy"


def provenance() -> dict:
    """The sample's provenance record; DataError naming the fix when it is missing or damaged."""
    try:
        record = json.loads(PROVENANCE.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"the bundled CIFAR-10 sample's record {PROVENANCE} cannot be read ({err}); reinstall "
                        "the harness, or pass --dataset keras or --dataset PATH") from None
    return record


def check() -> dict:
    """The provenance record, once the archive is checked against its SHA-256."""
    record = provenance()
    try:
        digest = hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    except OSError as err:
        raise DataError(f"the bundled CIFAR-10 sample {SAMPLE} cannot be read ({err.strerror}); reinstall the "
                        "harness, or pass --dataset keras or --dataset PATH") from None
    if digest != record.get("sha256"):
        raise DataError(f"the bundled CIFAR-10 sample {SAMPLE} does not match its recorded SHA-256 (damaged?); "
                        "reinstall the harness, or pass --dataset keras or --dataset PATH")
    return record


def images() -> int:
    return sum(provenance().get("images", {}).values())


def describe() -> str:
    """How the report and the terminal name it: ``bundled sample, 2,100 images: pipeline check, ...``."""
    return f"bundled sample, {images():,} images: {NOTE}"
