"""Is training reproducible? Two runs of the same backend, same seed, same data, compared.

Pure: takes two run folders that trained the same backends on the same data
with the same profile (``pytest benchmarks/`` twice with different run ids),
and says per backend whether the trained weights and the test probabilities
are bit-identical, and how far apart they are when not. Nondeterminism is a
finding to report (threaded reductions, oneDNN kernels, atomics), never an
error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ResultError
from harness.run_store import RunStore


def compare_arrays(a: list[np.ndarray], b: list[np.ndarray]) -> dict[str, Any]:
    """Bit-identical or not, and the largest absolute difference over lists of arrays."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=True)):
        return {"identical": False, "max_abs_diff": None, "reason": "the arrays have different shapes"}
    identical = all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    worst = max((float(np.max(np.abs(x.astype(np.float64) - y))) for x, y in zip(a, b, strict=True) if x.size),
                default=0.0)
    return {"identical": identical, "max_abs_diff": worst}


def compare_runs(first: Path, second: Path, backends: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per backend: weights and test probabilities of two runs, compared.

    Both runs must have seen the same data (same fingerprint in train.json),
    else the backend's entry says so instead of comparing.
    """
    runs = [RunStore.at(Path(p)) for p in (first, second)]
    names = backends or sorted(set.intersection(*(set((r.read_settings() or {}).get("backends", []))
                                                 for r in runs)))
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            trains = [r.read_result(name, "train") for r in runs]
            prints = {t.get("data", {}).get("fingerprint") for t in trains}
            if len(prints) != 1:
                found[name] = {"compared": False, "reason": "the two runs trained on different data"}
                continue
            entry: dict[str, Any] = {"compared": True,
                                     "weights": compare_arrays(*(r.weights(name) for r in runs))}
            probs = [r.probabilities(name, "test") for r in runs]
            entry["test_probs"] = compare_arrays([probs[0]], [probs[1]])
            entry["train_loss"] = [t.get("final", {}).get("train_loss") for t in trains]
            entry["bit_reproducible"] = entry["weights"]["identical"] and entry["test_probs"]["identical"]
            found[name] = entry
        except ResultError as err:
            found[name] = {"compared": False, "reason": str(err)}
    return found
