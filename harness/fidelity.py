"""Do the backends compute the same function? The fidelity matrix, in plain numpy.

Each backend's fidelity job ran every finished member's weights through its own
model on the same test images (``harness.workload.fidelity``). For a pair of
backends (A, B) and one set of weights W, A's and B's outputs for W should
agree to float32 rounding: a transposed kernel, a channels-first slip or
another padding rule changes nearly every output. The matrix cell (A, B) holds
the largest absolute probability difference and the lowest argmax agreement
over every set of weights both ran.

Who is to blame when a cell fails: a backend whose forward pass is wrong
disagrees with every other backend, the others only with it. A backend is
named when it fails against more than half of the backends it was compared
with; with only two backends, a failure names both (nothing can tell which is
right).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_ABS_DP = 1e-4
"""Largest allowed |p_A - p_B| for one image and class. float32 softmax outputs
of the same network differ across backends by rounding in the convolutions'
summation order: measured at about 1e-6 here; a wrong forward pass gives 1e-2 to 1."""
MIN_AGREEMENT = 0.999
"""Lowest allowed fraction of images with the same argmax (one near-tie in 1,000)."""


@dataclass(frozen=True)
class Tolerance:
    max_abs_dp: float = MAX_ABS_DP
    min_agreement: float = MIN_AGREEMENT

    def passes(self, max_abs_dp: float, agreement: float) -> bool:
        return max_abs_dp <= self.max_abs_dp and agreement >= self.min_agreement


def compare_pair(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max |a - b|, fraction of rows with the same argmax) of two [n, classes] outputs."""
    if a.shape != b.shape:
        raise ValueError(f"outputs of shape {a.shape} and {b.shape} cannot be compared")
    if not len(a):
        return 0.0, 1.0
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    worst = float(np.max(diff)) if np.all(np.isfinite(diff)) else float("inf")
    return worst, float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def matrix(outputs: dict[str, dict[str, np.ndarray]], tolerance: Tolerance = Tolerance()) -> dict[str, Any]:
    """The backend x backend fidelity matrix, and the backends it names.

    ``outputs[runner][weights]``: the runner backend's probabilities with the
    weights trained by ``weights``. Returns plain JSON-ready data: ``backends``,
    ``cells[a][b]`` (max_abs_dp, agreement, worst_weights, compared, passed),
    ``named[backend]`` (a one-line reason with the numbers), ``passed``.
    """
    runners = sorted(outputs)
    cells: dict[str, dict[str, Any]] = {a: {} for a in runners}
    failures: dict[str, list[str]] = {a: [] for a in runners}
    partners: dict[str, int] = {a: 0 for a in runners}
    for i, a in enumerate(runners):
        for b in runners[i + 1:]:
            shared = sorted(set(outputs[a]) & set(outputs[b]))
            cell: dict[str, Any] = {"max_abs_dp": None, "agreement": None, "worst_weights": None,
                                    "compared": shared, "passed": None}
            for source in shared:
                worst, agreement = compare_pair(outputs[a][source], outputs[b][source])
                if cell["max_abs_dp"] is None or worst > cell["max_abs_dp"]:
                    cell["max_abs_dp"], cell["worst_weights"] = worst, source
                cell["agreement"] = agreement if cell["agreement"] is None else min(cell["agreement"], agreement)
            if shared:
                cell["passed"] = tolerance.passes(cell["max_abs_dp"], cell["agreement"])
                partners[a] += 1
                partners[b] += 1
                if not cell["passed"]:
                    failures[a].append(b)
                    failures[b].append(a)
            cells[a][b] = cells[b][a] = cell
    named = {}
    for name in runners:
        if failures[name] and len(failures[name]) * 2 > partners[name]:
            worst = max(failures[name], key=lambda other: cells[name][other]["max_abs_dp"])
            cell = cells[name][worst]
            named[name] = (f"{name}'s forward pass differs from {len(failures[name])} of {partners[name]} "
                           f"other backend(s) ({', '.join(failures[name])}): worst against {worst}, "
                           f"max |dp| {cell['max_abs_dp']:.3g} (tolerance {tolerance.max_abs_dp:g}), argmax "
                           f"agreement {cell['agreement']:.2%} (at least {tolerance.min_agreement:.1%}), "
                           f"with {cell['worst_weights']}'s weights")
    return {
        "backends": runners,
        "tolerance": {"max_abs_dp": tolerance.max_abs_dp, "min_agreement": tolerance.min_agreement},
        "cells": cells,
        "named": named,
        "passed": not named,
    }


def summarise(outputs: dict[str, dict[str, np.ndarray]], images: int | None,
              problems: dict[str, str], tolerance: Tolerance = Tolerance()) -> dict[str, Any]:
    """The run's fidelity section: the matrix when two or more backends ran the check.

    ``problems[backend]``: why a backend's fidelity outputs are missing (its
    job failed or was skipped, its files are unreadable), shown beside the matrix.
    """
    section: dict[str, Any] = {"images": images, "problems": dict(problems)}
    if len(outputs) < 2:
        section.update(available=False, passed=None, named={},
                       reason=f"{len(outputs)} backend(s) ran the fidelity check; it compares two or more")
        return section
    section.update(matrix(outputs, tolerance), available=True, reason="")
    return section
