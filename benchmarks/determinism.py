"""Is training reproducible here? Compare two runs of the same backends, profile and seed.

    ./dev bench --profile smoke --dataset <path> --run-id a
    ./dev bench --profile smoke --dataset <path> --run-id b
    .venv/bin/python benchmarks/determinism.py .kbench/shared/runs/a .kbench/shared/runs/b

Prints, per backend, whether the trained weights and test probabilities are
bit-identical and the largest difference when not (``harness.scoring.determinism``).
Nondeterminism is a finding, not an error: the exit status is 0 either way,
and 2 only when the folders cannot be compared.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.scoring import determinism


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="a run folder (<shared>/runs/<run-id>)")
    parser.add_argument("second", type=Path, help="another run of the same backends, profile and data")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = parser.parse_args(argv)
    found = determinism.compare_runs(args.first, args.second)
    if not found:
        print(f"{args.first} and {args.second} have no backend in common", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
        return 0
    for name, entry in found.items():
        if not entry.get("compared"):
            print(f"{name:<11} not compared: {entry['reason']}")
            continue
        weights, probs = entry["weights"], entry["test_probs"]
        verdict = "bit-identical" if entry["bit_reproducible"] else (
            f"differs: weights by up to {weights['max_abs_diff']:.3g}, test probabilities by up to "
            f"{probs['max_abs_diff']:.3g}")
        print(f"{name:<11} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
