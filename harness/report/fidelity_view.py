"""The report's "same model on every backend" section: fidelity matrix and training accuracy, formatted.

Reads only the analysis (``fidelity`` and the members' training figures);
both templates show what ``fidelity_view`` and ``train_accuracy_view`` return.
"""
from __future__ import annotations

from typing import Any

from harness.report.formatting import DASH, num, pct, points
from harness.scoring.run_analysis import RunAnalysis

WEIGHT_FIGURE_WHY = (
    "The seed weights each member by its training accuracy. Keras's own figure is a running mean over the last "
    "epoch's batches that each backend's Keras computes in its own way: with dropout on, before each optimizer "
    "step, on most; after each step on the batch just learned, with dropout off, on Keras 2.3.1's CNTK backend "
    "(benchmarks/accuracy_probe.py), which inflates it. The inference-mode figure is the trained model scored on "
    "training images by the same numpy code on every backend, so it means the same everywhere. The seed's "
    "weights use it wherever the job measured it.")


def _dp(value: Any) -> str:
    return DASH if value is None else f"{value:.1e}"


def fidelity_view(analysis: RunAnalysis) -> dict[str, Any]:
    """The backend x backend matrix as rows of cells, with a pass/fail mark per cell."""
    section = analysis.fidelity or {}
    view: dict[str, Any] = {
        "present": analysis.fidelity is not None,  # absent from analyses made before the check existed
        "available": bool(section.get("available")),
        "reason": section.get("reason") or "",
        "images": section.get("images"),
        "problems": sorted((section.get("problems") or {}).items()),
        "named": sorted((section.get("named") or {}).items()),
        "passed": section.get("passed"),
        "backends": section.get("backends") or [],
        "rows": [],
    }
    tolerance = section.get("tolerance") or {}
    view["tolerance"] = (f"max |dp| ≤ {tolerance.get('max_abs_dp', 0):g}, argmax agreement ≥ "
                         f"{pct(tolerance.get('min_agreement'))}") if tolerance else ""
    cells = section.get("cells") or {}
    for a in view["backends"]:
        row = []
        for b in view["backends"]:
            cell = (cells.get(a) or {}).get(b)
            if a == b or not cell or cell.get("max_abs_dp") is None:
                row.append({"text": DASH, "passed": None})
                continue
            row.append({"text": f"{_dp(cell['max_abs_dp'])} / {pct(cell['agreement'], 1)}",
                        "passed": cell.get("passed")})
        view["rows"].append({"name": a, "cells": row})
    return view


def step_view(analysis: RunAnalysis) -> dict[str, Any]:
    """The one-step check: each pair's loss and gradient differences from the same starting weights."""
    step = (analysis.fidelity or {}).get("step") or {}
    view: dict[str, Any] = {"available": bool(step.get("available")), "reason": step.get("reason") or "",
                            "reference": step.get("reference_weights"), "images": step.get("images"),
                            "named": sorted((step.get("named") or {}).items()),
                            "left_out": sorted((step.get("left_out") or {}).items()), "rows": []}
    tolerance = step.get("tolerance") or {}
    view["tolerance"] = (f"loss within {tolerance.get('loss_rtol', 0):g} relative, every gradient within "
                         f"{tolerance.get('grad_rtol', 0):g} of its weight array's largest") if tolerance else ""
    sensitivity = step.get("sensitivity") or {}
    if tolerance.get("sensitivity_factor") and sensitivity:
        view["tolerance"] += (
            f", or {tolerance['sensitivity_factor']:g} times the array's sensitivity where that is more, up to "
            f"{tolerance.get('grad_cap', 0.1):g} (sensitivity: how far its gradient moves in a step from weights "
            f"and batch one float32 ulp away; the most sensitive array measured {min(sensitivity.values()):.1e} "
            f"to {max(sensitivity.values()):.1e} across backends)")
    cells = step.get("cells") or {}
    losses = step.get("losses") or {}
    names = sorted(cells)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            cell = cells[a][b]
            view["rows"].append({"pair": f"{a} – {b}", "passed": cell.get("passed"), "cells": [
                f"{cell['loss_rel']:.1e}", f"{cell['grad_rel']:.1e}",
                f"{cell.get('grad_tolerance', tolerance.get('grad_rtol', 0)):.1e}", f"{cell['grad_abs']:.1e}",
                "pass" if cell.get("passed") else "FAIL"]})
    view["losses"] = [(n, num((losses.get(n) or {}).get("keras"), 6)) for n in names]
    return view


def train_accuracy_view(analysis: RunAnalysis) -> dict[str, Any]:
    """Each member's two training accuracies side by side, and which one the seed's weights use."""
    rows = []
    for name, m in analysis.members.items():
        keras, inference = m.train_accuracy, m.train_accuracy_inference
        if keras is None and inference is None:
            continue
        sample = m.train_inference_sample or {}
        gap = keras - inference if keras is not None and inference is not None else None
        rows.append({"name": name, "cells": [
            pct(keras), num(m.train_loss), pct(inference), num(m.train_loss_inference),
            points(gap), f"{sample.get('images')} of {sample.get('of')}" if sample else DASH,
            {"inference": "inference", "keras": "Keras's"}.get(m.seed_weight_figure or "", DASH)]})
    return {"columns": ["Keras acc. (its running figure)", "Keras loss", "Inference acc.", "Inference loss",
                        "Keras − inference", "Training images scored", "Seed weight uses"],
            "rows": rows, "why": WEIGHT_FIGURE_WHY}
