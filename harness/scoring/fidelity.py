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
STEP_LOSS_RTOL = 1e-5
"""One-step check: largest allowed |loss_A - loss_B| / loss. The loss is a mean of 32
float32 log-probabilities: rounding alone moves it by about 1e-7 relative."""
STEP_GRAD_RTOL = 1e-3
"""One-step check: largest allowed max|g_A - g_B| / max|g| for each weight array.
Summation order moves gradients by about 1e-6 relative in float32: measured at most
4.4e-6 between any two of the five backends on the default profile (3e-5 on smoke).
Exact ties are where backends legitimately differ (which tied maximum of a pooling
window gets the gradient; Theano gives it to all): 3% of the first kernel's largest
value on real CIFAR-10 images, whose flat regions tie. The step's batch carries
noise below half a grey level (``harness.workload.fidelity.tie_breaking_noise``), so
ties do not occur and this bound can sit far below them. A wrong backward pass (a
transposed or flipped kernel) is off by order 1.

This is the floor of each array's tolerance; an array whose gradient float32
rounding itself moves further gets more (``SENSITIVITY_FACTOR``)."""
SENSITIVITY_FACTOR = 100.0
"""An array's one-step tolerance is at least this many times its measured sensitivity.

Each fidelity job takes the step twice, the second time from weights and a batch
moved one float32 ulp each (``harness.workload.fidelity.ulp_nudge``): the relative
change of an array's gradient between the two is how far rounding alone moves it
on that backend. Most arrays move by 1e-7 (the floor above rules), but where
batch normalisation's backward pass makes terms cancel, a one-ulp nudge moves a
gradient by 1e-3 of its largest value (mobilenet-small, measured on every Keras 3
backend). Two backends' different summation orders and algorithms are not one
ulp but many roundings, each amplified the same way. Measured on mobilenet-small
(CNTK's trained weights, 2026-12-01): TensorFlow's batch-norm gradients are
1.5-2.0e-2 off the four others', which agree more closely: the same function
computed less exactly. Against 100 times the largest sensitivity any backend
measured, every pair passed with at least 5x of room (smoke and default
profiles); the worst was at a fifth of its tolerance. The tolerance never exceeds
``STEP_GRAD_CAP``."""
STEP_GRAD_CAP = 0.1
"""No array's one-step tolerance is above this, whatever its sensitivity.

Besides smooth ill-conditioning, a one-ulp nudge can flip a ReLU whose input
lies within rounding of zero, which moves one gradient entry by a whole term:
on resnet-small (default profile, 2026-12-01) the same nudge moved some arrays'
gradients by up to 1.0e-2 of their largest value on JAX and PyTorch and by 8e-6
on TensorFlow (in a probe, one batch-norm beta entry by 2.9e-2).
A hundred times that would leave the array unchecked. A wrong
backward pass (a transposed or flipped kernel, another padding) is off by order
1, so 0.1 still fails it in every array."""


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
            cells[a][b] = cells[b][a] = cell
    pairs = {(a, b): cells[a][b]["passed"] for i, a in enumerate(runners) for b in runners[i + 1:]
             if cells[a][b]["passed"] is not None}
    named = {}
    for name, against in _blame(pairs, runners).items():
        worst = max(against, key=lambda other: cells[name][other]["max_abs_dp"])
        cell = cells[name][worst]
        named[name] = (f"{name}'s forward pass differs from {len(against)} of {partners[name]} "
                       f"other backend(s) ({', '.join(against)}): worst against {worst}, "
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
              problems: dict[str, str], tolerance: Tolerance = Tolerance(),
              steps: dict[str, dict[str, Any]] | None = None,
              step_grads: dict[str, list[np.ndarray]] | None = None) -> dict[str, Any]:
    """The run's fidelity section: the matrix when two or more backends ran the check.

    ``problems[backend]``: why a backend's fidelity outputs are missing (its
    job failed or was skipped, its files are unreadable), shown beside the matrix.
    ``steps``/``step_grads``: the one-step check of each backend, compared
    under ``step`` (see ``step_matrix``).
    """
    section: dict[str, Any] = {"images": images, "problems": dict(problems),
                               "step": step_matrix(steps or {}, step_grads or {})}
    if len(outputs) < 2:
        section.update(available=False, passed=None, named={},
                       reason=f"{len(outputs)} backend(s) ran the fidelity check; it compares two or more")
        return section
    section.update(matrix(outputs, tolerance), available=True, reason="")
    return section


def _blame(pairs: dict[tuple[str, str], bool], names: list[str]) -> dict[str, list[str]]:
    """Backends that fail against more than half of those they were compared with, and against whom."""
    failed: dict[str, list[str]] = {n: [] for n in names}
    partners: dict[str, int] = {n: 0 for n in names}
    for (a, b), passed in pairs.items():
        partners[a] += 1
        partners[b] += 1
        if not passed:
            failed[a].append(b)
            failed[b].append(a)
    return {n: failed[n] for n in names if failed[n] and len(failed[n]) * 2 > partners[n]}


def step_matrix(steps: dict[str, dict[str, Any]], grads: dict[str, list[np.ndarray]],
                loss_rtol: float = STEP_LOSS_RTOL, grad_rtol: float = STEP_GRAD_RTOL) -> dict[str, Any]:
    """One training step from the same weights on every backend: loss and gradient differences.

    ``steps[backend]``: the fidelity job's ``step`` record (reference weights,
    losses); ``grads[backend]``: its gradients, one array per weight. Backends
    that started from other weights than most are left out with that reason.
    """
    if not steps:
        return {"available": False, "reason": "no backend ran the one-step check"}
    references = sorted({s.get("reference_weights") for s in steps.values()}, key=str)
    reference = max(references, key=lambda r: sum(s.get("reference_weights") == r for s in steps.values()))
    names = sorted(n for n, s in steps.items() if s.get("reference_weights") == reference and n in grads)
    left_out = {n: f"it started from {steps[n].get('reference_weights')}'s weights, not {reference}'s"
                for n in steps if n not in names}
    cells: dict[str, dict[str, Any]] = {n: {} for n in names}
    pairs = {}
    largest = {"loss_rel": 0.0, "grad_rel": 0.0, "grad_abs": 0.0}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            la, lb = steps[a]["loss_keras"], steps[b]["loss_keras"]
            loss_rel = abs(la - lb) / max(abs(la), abs(lb), 1e-12)
            if len(grads[a]) != len(grads[b]):
                cell = {"loss_rel": loss_rel, "grad_rel": float("inf"), "grad_abs": float("inf"),
                        "worst_array": None, "passed": False}
            else:
                tolerances = array_tolerances([steps[n] for n in names], len(grads[a]), grad_rtol)
                worst_rel, worst_abs, worst_at, worst_margin = 0.0, 0.0, None, -1.0
                for k, (ga, gb) in enumerate(zip(grads[a], grads[b], strict=True)):
                    diff = float(np.max(np.abs(ga.astype(np.float64) - gb))) if ga.size else 0.0
                    scale = max(float(np.max(np.abs(ga))), float(np.max(np.abs(gb))), 1e-30) if ga.size else 1.0
                    if not np.isfinite(diff):
                        diff = float("inf")
                    # the worst array is the one nearest its own tolerance (or furthest beyond it)
                    if diff / scale / tolerances[k] >= worst_margin:
                        worst_rel, worst_at, worst_margin = diff / scale, k, diff / scale / tolerances[k]
                    worst_abs = max(worst_abs, diff)
                tolerance = tolerances[worst_at] if worst_at is not None else grad_rtol
                cell = {"loss_rel": loss_rel, "grad_rel": worst_rel, "grad_abs": worst_abs,
                        "worst_array": worst_at, "grad_tolerance": tolerance,
                        "passed": loss_rel <= loss_rtol and worst_margin <= 1.0}
            cells[a][b] = cells[b][a] = cell
            pairs[(a, b)] = cell["passed"]
            largest = {key: max(value, cell[key]) for key, value in largest.items()}
    named = {}
    for name, against in _blame(pairs, names).items():
        worst = max(against, key=lambda other: cells[name][other]["grad_rel"])
        cell = cells[name][worst]
        named[name] = (f"{name}'s training step differs from {len(against)} other backend(s) "
                       f"({', '.join(against)}): worst against {worst}, loss differs by {cell['loss_rel']:.2g} "
                       f"relative (tolerance {loss_rtol:g}), gradients by {cell['grad_rel']:.2g} of their "
                       f"largest value (tolerance {cell['grad_tolerance']:.2g}) in weight array "
                       f"{cell['worst_array']}")
    return {
        "available": len(names) >= 2,
        "reason": "" if len(names) >= 2 else "fewer than two backends started from the same weights",
        "reference_weights": reference,
        "images": steps[names[0]].get("images") if names else None,
        "losses": {n: {"keras": steps[n]["loss_keras"], "numpy": steps[n].get("loss_numpy")} for n in names},
        "tolerance": {"loss_rtol": loss_rtol, "grad_rtol": grad_rtol,
                      "sensitivity_factor": SENSITIVITY_FACTOR, "grad_cap": STEP_GRAD_CAP},
        "sensitivity": {n: max(steps[n]["sensitivity"], default=0.0) for n in names
                        if isinstance(steps[n].get("sensitivity"), list)},
        "cells": cells,
        "largest": largest,
        "named": named,
        "left_out": left_out,
        "passed": not named,
    }


def array_tolerances(steps: list[dict[str, Any]], arrays: int,
                     grad_rtol: float = STEP_GRAD_RTOL) -> list[float]:
    """Each weight array's one-step tolerance.

    The larger of ``grad_rtol`` and ``SENSITIVITY_FACTOR`` times the array's
    sensitivity (the change of its gradient in a step from inputs one ulp away),
    at most ``STEP_GRAD_CAP``, ``grad_rtol`` alone where no job recorded it (an
    older run). The sensitivity is the largest any backend measured: the model,
    weights, batch and nudge are the same everywhere, but whether a ReLU within
    rounding of zero flips depends on each backend's rounding (resnet-small: the
    same nudge moved some arrays by 1e-2 on JAX and PyTorch, 8e-6 on TensorFlow), so
    the largest is what rounding can do to this array. The cap bounds how far a
    backend with erratic gradients can widen anyone's tolerance.
    """
    measured = [step.get("sensitivity") for step in steps]
    measured = [m for m in measured if isinstance(m, list) and len(m) == arrays]
    tolerances = []
    for k in range(arrays):
        values = [float(m[k]) for m in measured if isinstance(m[k], (int, float)) and np.isfinite(m[k])]
        sensitivity = max(values, default=0.0)
        tolerances.append(max(grad_rtol, min(STEP_GRAD_CAP, SENSITIVITY_FACTOR * sensitivity)))
    return tolerances
