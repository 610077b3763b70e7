"""Speed figures of a run, from its speed jobs: distributions, the ceiling, MFU, who is fastest.

Pure: takes each backend's ``speed.json`` (as ``harness.scoring.gather`` read
it) and returns the plain JSON the analysis stores under ``speed`` and the
report and the gate read. Every figure here was measured by a job that ran
alone on its machine (``harness.phases``: it runs ``alone``), at the same thread count
for every backend; the training jobs' own images per second, measured while
other jobs shared the machine, are not used here.

* ``backends[name]``: training images/s and step time, inference images/s and
  batch latency, each as median, interquartile range and bootstrap 95%
  interval of the median (``harness.scoring.intervals``); MFU against the
  ceiling; the configuration the figures were measured in.
* ``ceiling``: per machine and thread count, the best float32 matmul rate any
  kernel reached (every speed job measures its own kernels once per machine,
  so the best of them all is the machine's), with every kernel's rate and the
  theoretical peak beside it. On a GPU the machine is the GPU model and its
  TF32 and bfloat16 rates are listed beside the float32 one (``beside``).
* ``ranking``: one sentence per figure naming the fastest backend only where
  its interval is separated from the next one's; otherwise, who is tied.
* ``above_ceiling``: every MFU above 100%, which means the ceiling is wrong.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from harness.jobs import reasons_once
from harness.scoring import intervals

HOW = ("each backend timed alone on the machine (no other job of the run running), after "
       "{warmup} warm-up steps: {steps} training steps of batch {batch} and {batches} inference batches "
       "of {pbatch}, at {threads} thread(s)")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def rate_figures(seconds: list[float], images: int) -> dict[str, Any]:
    """A time distribution and the images/s it means: median, IQR and 95% interval of each.

    Images/s of the median step is the median of images/s (the map is monotone),
    and so are the interval's ends, swapped. The 95% interval is bootstrapped
    over medians of 10-step blocks (``intervals.block_medians``), as the gate
    does: consecutive steps drift together, and single steps would give an
    interval narrower than a rerun's spread.
    """
    ms = intervals.summarise([s * 1000.0 for s in seconds])
    blocks = intervals.block_medians([s * 1000.0 for s in seconds])
    if len(blocks) >= 3 and len(blocks) < len(seconds):  # the interval from blocks: steps drift together
        low, high = intervals.bootstrap_ci(blocks)
        ms = dataclasses.replace(ms, ci_low=min(low, ms.median), ci_high=max(high, ms.median))
    per_s = {key: (images * 1000.0 / getattr(ms, key) if getattr(ms, key) else None)
             for key in ("median", "q1", "q3", "ci_low", "ci_high")}
    return {
        "ms": ms.to_json(),
        "images_per_s": {"median": _round(per_s["median"]), "q1": _round(per_s["q3"]),
                         "q3": _round(per_s["q1"]), "ci_low": _round(per_s["ci_high"]),
                         "ci_high": _round(per_s["ci_low"]), "n": ms.n},
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def ceilings(results: dict[str, dict]) -> dict[tuple[str, int], dict[str, Any]]:
    """(machine id, threads) -> the best kernel of every speed job measured there, with all kernels."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for result in results.values():
        ceiling = result.get("ceiling") or {}
        machine = ceiling.get("machine") or {}
        key = (str(machine.get("id")), int(ceiling.get("threads") or 0))
        entry = found.setdefault(key, {"machine": machine, "threads": key[1], "kernels": {},
                                       "theoretical_peak": ceiling.get("theoretical_peak")})
        for name, kernel in (ceiling.get("kernels") or {}).items():
            if not isinstance(kernel, dict):
                continue
            known = entry["kernels"].get(name)
            if known is None or (_number(kernel.get("gflops")) and kernel["gflops"] > (known.get("gflops") or 0)):
                entry["kernels"][name] = {k: kernel.get(k) for k in ("gflops", "what", "error", "beside")
                                          if kernel.get(k) is not None}
    for entry in found.values():  # TF32 and bfloat16 rates on a GPU are listed, never the float32 ceiling
        usable = [(k["gflops"], name) for name, k in entry["kernels"].items()
                  if _number(k.get("gflops")) and not k.get("beside")]
        entry["gflops"], entry["kernel"] = max(usable) if usable else (None, None)
        peak = (entry.get("theoretical_peak") or {}).get("gflops")
        entry["above_theoretical_peak"] = bool(entry["gflops"] and peak and entry["gflops"] > peak)
    return found


def mfu(images_per_s: float | None, flop_per_image: Any, ceiling_gflops: float | None) -> float | None:
    """Model FLOP utilisation: the model's FLOP rate over the machine's ceiling."""
    if not images_per_s or not _number(flop_per_image) or not ceiling_gflops:
        return None
    return round(images_per_s * flop_per_image / (ceiling_gflops * 1e9), 4)


def configuration(result: dict) -> dict[str, Any]:
    """What the figures were measured in: threads, layout, versions, thread variables, flags."""
    env = result.get("environment") or {}
    return {"threads": (result.get("settings") or {}).get("threads"),
            "image_data_format": env.get("image_data_format"), "jit_compile": env.get("jit_compile"),
            "keras": env.get("keras"),
            "backend_version": env.get("backend_version"), "python": env.get("python"),
            "threads_in_effect": env.get("threads"), "variables": env.get("variables") or {}}


def summarise(results: dict[str, dict], problems: dict[str, str]) -> dict[str, Any]:
    """The run's speed section (see the module docstring)."""
    if not results:
        reason = reasons_once(dict(sorted(problems.items()))) or \
            "this run has no speed phase (its profile sets speed_steps to 0)"
        return {"available": False, "reason": reason, "problems": dict(problems), "backends": {}}
    machine_ceilings = ceilings(results)
    backends: dict[str, Any] = {}
    above: dict[str, str] = {}
    for name, result in sorted(results.items()):
        settings = result.get("settings") or {}
        train, predict = result.get("train") or {}, result.get("predict") or {}
        ceiling = result.get("ceiling") or {}
        key = (str((ceiling.get("machine") or {}).get("id")), int(ceiling.get("threads") or 0))
        best = machine_ceilings.get(key, {})
        row: dict[str, Any] = {
            "train": rate_figures(train["step_s"], int(train.get("images_per_step") or settings.get("batch_size"))),
            "configuration": configuration(result),
            "ceiling_gflops": best.get("gflops"),
            "machine": key[0],
            "slowdown": settings.get("slowdown"),
        }
        if predict.get("batch_s"):
            row["predict"] = rate_figures(predict["batch_s"], int(predict.get("images_per_batch") or 1))
        cost = result.get("flops") or {}
        row["train_mfu"] = mfu(row["train"]["images_per_s"]["median"], cost.get("train"), best.get("gflops"))
        if "predict" in row:
            row["inference_mfu"] = mfu(row["predict"]["images_per_s"]["median"], cost.get("forward"),
                                       best.get("gflops"))
        for label, key_ in (("training", "train_mfu"), ("inference", "inference_mfu")):
            if (row.get(key_) or 0) > 1.0:
                above[name] = (f"{name}'s {label} MFU is {row[key_]:.0%} of the {best.get('gflops')} GFLOP/s "
                               f"ceiling ({best.get('kernel')}): the ceiling is wrong, not the backend")
        backends[name] = row
    first = next(iter(results.values()))
    settings = first.get("settings") or {}
    how = HOW.format(warmup=settings.get("warmup_steps"), steps=settings.get("steps"),
                     batch=settings.get("batch_size"), batches=settings.get("predict_batches"),
                     pbatch=settings.get("predict_batch_size"), threads=settings.get("threads"))
    threads = sorted({row["configuration"]["threads"] for row in backends.values()}, key=str)
    return {
        "available": True,
        "how": how,
        "threads": threads[0] if len(threads) == 1 else threads,
        "backends": backends,
        "ceilings": [dict(entry, machine_id=machine) for (machine, _), entry in sorted(machine_ceilings.items())],
        "ranking": {
            "train": intervals.ranking(_ranked(backends, "train"), higher_is_better=True, noun="fastest to train",
                                       fmt=_img_s, unit="img/s"),
            "predict": intervals.ranking(_ranked(backends, "predict"), higher_is_better=True,
                                         noun="fastest to infer", fmt=_img_s, unit="img/s"),
        },
        "above_ceiling": above,
        "problems": dict(problems),
    }


def _img_s(value: float) -> str:
    return f"{value:,.0f}"


def _ranked(backends: dict[str, Any], part: str) -> dict[str, tuple[float, float | None, float | None]]:
    out = {}
    for name, row in backends.items():
        figures = (row.get(part) or {}).get("images_per_s") or {}
        if figures.get("median"):
            out[name] = (figures["median"], figures.get("ci_low"), figures.get("ci_high"))
    return out
