"""Small PNG pictures of the test images a report talks about, read from the data-set cache.

The report shows the first test images (the per-image table) and the images
the ensemble rescued or lost. Their pixels live in the decoded data-set cache
the jobs share (``<shared>/cache/datasets/<key>/x_test.npy``); which cache rows
a run used follows from its profile (``subset_indices``). Before trusting the
cache we recompute the run's data fingerprint from it: a cache that does not
match (or is missing, e.g. on another machine) gives a one-sentence reason
instead of pictures, never a wrong picture or an error.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.scoring.record import RunAnalysis
from harness.workload import layout
from harness.workload.data import fingerprint, subset_indices


@dataclass
class Thumbnails:
    """PNG bytes by test-set position, or why there are none."""

    images: dict[int, bytes] = field(default_factory=dict)
    unavailable: str | None = None


def wanted_positions(analysis: RunAnalysis) -> list[int]:
    """Test positions the report shows: the per-image table's and the rescue examples'."""
    table = (analysis.table or {}).get("indices", [])
    examples = [e["index"] for e in (analysis.rescue or {}).get("examples", [])]
    return sorted({int(i) for i in list(table) + examples})


def cache_folder(shared_dir: Path, cache_key: str) -> Path:
    return Path(layout.dataset_cache_dir(layout.cache_dir(str(shared_dir)), cache_key))


def load(analysis: RunAnalysis, shared_dir: Path) -> Thumbnails:
    """The pictures for ``wanted_positions(analysis)`` from the run's data-set cache."""
    positions = wanted_positions(analysis)
    if not positions:
        return Thumbnails()
    key = analysis.data.get("cache_key")
    profile = analysis.settings.get("profile")
    if not key or not isinstance(profile, dict):
        return Thumbnails(unavailable="images are unavailable: the run does not name its data cache")
    folder = cache_folder(shared_dir, key)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        labels = {split: np.load(folder / f"y_{split}.npy") for split in ("train", "test")}
        indices = subset_indices(labels, profile["n_train"], profile["n_val"], profile["n_test"],
                                 profile["seed"])
        if fingerprint(meta["content_sha256"], indices) != analysis.fingerprint:
            return Thumbnails(unavailable=f"images are unavailable: the data cache {folder} holds "
                                          "other images than this run used (fingerprints differ)")
        pixels = np.load(folder / "x_test.npy", mmap_mode="r")
        rows = indices["test"]
        images = {pos: _png(np.asarray(pixels[rows[pos]])) for pos in positions if pos < len(rows)}
    except FileNotFoundError:
        return Thumbnails(unavailable=f"images are unavailable: the data cache {folder} is not on "
                                      "this machine")
    except (OSError, ValueError, KeyError, TypeError, DataError) as err:
        return Thumbnails(unavailable=f"images are unavailable: the data cache {folder} could not "
                                      f"be read ({err})")
    return Thumbnails(images)


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
