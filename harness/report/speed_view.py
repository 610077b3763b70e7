"""The report's speed section: each backend timed alone, with its spread, MFU and the ceiling.

Reads only the analysis's ``speed`` section (``harness.scoring.speed``); both
templates lay out what ``speed_view`` returns.
"""
from __future__ import annotations

from typing import Any

from harness.report.formats import DASH, num, pct, rate
from harness.scoring.record import RunAnalysis

COLUMNS = ["Train img/s", "95% interval", "IQR", "Step ms", "Infer img/s", "95% interval", "Batch ms",
           "Train MFU", "Infer MFU", "Threads", "Layout", "JIT", "Outside load"]
WHY = ("Medians of per-step times, with a bootstrap 95% interval of the median and the interquartile range "
       "(IQR) of the steps; a backend is called the fastest only where its interval is clear of the next one's. "
       "MFU is the model's FLOP rate over the machine's ceiling: the best float32 matmul rate any kernel reached "
       "here at the same thread count. Outside load: the CPU other processes used while the backend was timed "
       "(the larger of training and inference), in cores; a figure timed while it was above a tenth of a core, "
       "or while the VM or container was held back, is marked contended and never ranked.")


def _span(figures: dict[str, Any], low: str, high: str) -> str:
    if not figures or figures.get(low) is None or figures.get(high) is None:
        return DASH
    return f"{rate(figures[low])}–{rate(figures[high])}"


def speed_view(analysis: RunAnalysis) -> dict[str, Any]:
    section = analysis.speed or {}
    view: dict[str, Any] = {"present": analysis.speed is not None, "available": bool(section.get("available")),
                            "reason": section.get("reason") or "", "how": section.get("how") or "",
                            "why": WHY, "columns": COLUMNS, "rows": [],
                            "problems": sorted((section.get("problems") or {}).items()),
                            "above_ceiling": sorted((section.get("above_ceiling") or {}).items()),
                            "ranking": [], "ceilings": [], "notes": [],
                            "shared": section.get("shared") or ""}
    if not view["available"]:
        return view
    for name, row in (section.get("backends") or {}).items():
        train = (row.get("train") or {}).get("images_per_s") or {}
        train_ms = (row.get("train") or {}).get("ms") or {}
        infer = (row.get("predict") or {}).get("images_per_s") or {}
        infer_ms = (row.get("predict") or {}).get("ms") or {}
        config = row.get("configuration") or {}
        note = f" (slowed {row['slowdown']}x by a fault)" if row.get("slowdown") else ""
        view["rows"].append({"name": name + note, "cells": [
            rate(train.get("median")), _span(train, "ci_low", "ci_high"), _span(train, "q1", "q3"),
            num(train_ms.get("median"), 1), rate(infer.get("median")), _span(infer, "ci_low", "ci_high"),
            num(infer_ms.get("median"), 1), pct(row.get("train_mfu")), pct(row.get("inference_mfu")),
            str(config.get("threads") or DASH), str(config.get("image_data_format") or DASH),
            _jit(config.get("jit_compile")), _outside(row)]})
        for part, label in (("train", "training"), ("predict", "inference")):
            load = (row.get("load") or {}).get(part) or {}
            if load.get("contended"):
                view["notes"].append((name, f"{label} timed on a shared machine: {'; '.join(load.get('reasons') or [])}"))
        if name in (section.get("low_ceiling") or {}):
            view["notes"].append((name, section["low_ceiling"][name]))
        if (row.get("modes") or {}).get("text"):
            view["notes"].append((name, f"training speed in {row['modes']['text']}"))
    ranking = section.get("ranking") or {}
    view["ranking"] = [text for text in (ranking.get("train"), ranking.get("predict")) if text]
    for entry in section.get("ceilings") or []:
        kernels = sorted(((k.get("gflops") or 0, name, k) for name, k in (entry.get("kernels") or {}).items()),
                         key=lambda item: -item[0])
        peak = entry.get("theoretical_peak") or {}
        machine = entry.get("machine") or {}
        gpu = machine.get("gpu_model")
        view["ceilings"].append({
            "machine": gpu or machine.get("cpu_model") or DASH,
            "gpu": bool(gpu),
            "threads": entry.get("threads"),
            "where": gpu or f"{machine.get('cpu_model') or DASH} at {entry.get('threads')} thread(s)",
            "gflops": rate(entry.get("gflops")), "kernel": entry.get("kernel") or DASH,
            "kernels": ", ".join(_kernel_text(name, k) for _, name, k in kernels),
            "peak": (f"{rate(peak.get('gflops'))} GFLOP/s: {peak.get('how')}" if peak.get("gflops") else
                     "not computed for a GPU: its measured float32 rate is the ceiling" if gpu else
                     "not knowable from what the CPU reports"),
            "above_peak": bool(entry.get("above_theoretical_peak")),
        })
    return view


def _kernel_text(name: str, kernel: dict) -> str:
    if not kernel.get("gflops"):
        return f"{name} (not measured: {kernel.get('error', 'unavailable')})"
    return f"{name} {rate(kernel['gflops'])}" + (" (listed beside, not the ceiling)" if kernel.get("beside") else "")


def ceiling_facts(analysis: RunAnalysis) -> list[tuple[str, str]]:
    """Lines for the report's "what ran" list: how speed was timed, the ceiling, its kernel, the peak."""
    view = speed_view(analysis)
    if not view["available"]:
        return [("Speed", view["reason"] or DASH)] if view["present"] else []
    facts = [("Speed", view["how"])]
    for entry in view["ceilings"]:
        where = entry["machine"] if entry["gpu"] else f"{entry['machine']}, {entry['threads']} thread(s)"
        facts.append(("Ceiling", (f"{entry['gflops']} GFLOP/s float32 matmul ({entry['kernel']}) on {where}; "
                                 f"every kernel measured: {entry['kernels']}")))
        above = (" The measured ceiling is above it, so the cores run faster than the reported clock."
                 if entry["above_peak"] else "")
        facts.append(("Theoretical peak", entry["peak"] + above))
    return facts


def _outside(row: dict[str, Any]) -> str:
    """The most CPU other processes used during the backend's timed sections, and whether it was contended."""
    loads = [load for load in (row.get("load") or {}).values() if load]
    if not loads:
        return DASH
    worst = max(float(load.get("others_cores") or 0.0) for load in loads)
    return f"{worst:.2f} cores" + (", contended" if any(load.get("contended") for load in loads) else "")


def _jit(value) -> str:
    """Keras 3's jit_compile as the job compiled with it; a dash on Keras 2, which has none."""
    if value is None:
        return DASH
    return {True: "on", False: "off"}.get(value, str(value))
