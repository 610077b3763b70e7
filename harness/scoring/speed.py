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
  its interval is separated from the next one's; otherwise, who is tied. A
  backend timed while other processes used the machine (``contended``) is
  never ranked, and the sentence says so.
* ``backends[name]["load"]``: what else the machine did while each section
  was timed (``harness.workload.machine_load``), with ``contended`` and why;
  ``modes``: the training segments' speeds, grouped into modes when they fall
  apart (a backend that runs at two speeds shows both, never one by chance).
* ``shared``: one sentence when any figure was timed on a shared machine, and how much.
* ``above_ceiling``: every MFU above 100% of a ceiling measured on a quiet
  machine, which means the ceiling is wrong (the speed case fails on it).
* ``low_ceiling``: every MFU above 100% of a ceiling that was itself measured
  while other processes used the machine: that ceiling is low, not wrong; it is
  said, not failed, and the next quiet run measures it again.
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
                entry["kernels"][name] = {k: kernel.get(k) for k in ("gflops", "what", "error", "beside", "contended")
                                          if kernel.get(k) is not None}
    for entry in found.values():  # TF32 and bfloat16 rates on a GPU are listed, never the float32 ceiling
        usable = [(k["gflops"], name) for name, k in entry["kernels"].items()
                  if _number(k.get("gflops")) and not k.get("beside")]
        entry["gflops"], entry["kernel"] = max(usable) if usable else (None, None)
        entry["contended"] = bool(entry["kernel"] and entry["kernels"][entry["kernel"]].get("contended"))
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


MODE_GAP = 1.25
"""Segments whose speeds differ by more than this factor (with none between them) are separate modes:
well above the 1-2% spread of a steady backend's segments, well below the factor two of a time-shared core."""


def segment_rates(result: dict) -> list[dict[str, Any]]:
    """Each training segment's img/s (its median step) and whether it was timed on a shared machine."""
    train = result.get("train") or {}
    steps, batch = train.get("step_s") or [], int(train.get("images_per_step") or 1)
    found = []
    for segment in train.get("segments") or []:
        first, count = int(segment.get("first_step") or 0), int(segment.get("steps") or 0)
        timed = sorted(steps[first:first + count])
        if not timed:
            continue
        median = timed[len(timed) // 2] if len(timed) % 2 else (timed[len(timed) // 2 - 1] + timed[len(timed) // 2]) / 2
        load = segment.get("load") or {}
        found.append({"images_per_s": round(batch / median, 1) if median > 0 else None,
                      "contended": bool(load.get("contended")), "others_cores": load.get("others_cores")})
    return found


def modes(segments: list[dict[str, Any]], gap: float = MODE_GAP) -> dict[str, Any]:
    """The segments' speeds grouped into modes: sorted, split where one is ``gap`` times the one below.

    ``{"count", "modes": [{"images_per_s" (mean), "segments", "contended"}], "text"}``; one mode means the
    segments agree.
    """
    rates = sorted((s for s in segments if s.get("images_per_s")), key=lambda s: s["images_per_s"])
    groups: list[list[dict[str, Any]]] = []
    for segment in rates:
        if groups and segment["images_per_s"] <= groups[-1][-1]["images_per_s"] * gap:
            groups[-1].append(segment)
        else:
            groups.append([segment])
    found = [{"images_per_s": round(sum(s["images_per_s"] for s in g) / len(g), 1), "segments": len(g),
              "contended": sum(1 for s in g if s["contended"])} for g in groups]
    text = ""
    if len(found) > 1:
        fastest = found[-1]
        text = (f"{_count_word(len(found))} modes, "
                + " and ".join(f"{_img_s(m['images_per_s'])}" for m in found)
                + f" img/s, {fastest['segments']} of {len(rates)} segments fast")
        slow_contended = sum(m["contended"] for m in found[:-1])
        slow_total = sum(m["segments"] for m in found[:-1])
        if slow_contended:
            text += (f"; {slow_contended} of the {slow_total} slower segment(s) ran while other processes "
                     "used the machine")
    return {"count": len(found), "modes": found, "text": text}


def _count_word(n: int) -> str:
    return {2: "two", 3: "three", 4: "four"}.get(n, str(n))


def load_figures(reading: dict | None) -> dict[str, Any] | None:
    """The parts of a section's load reading the report shows, with ``contended`` and why."""
    if not reading:
        return None
    keep = ("others_cores", "others_on_own_cpus_cores", "steal_share", "pressure_some_share", "contended",
            "reasons", "seconds")
    return {k: reading.get(k) for k in keep if reading.get(k) is not None}


def contention(row: dict[str, Any], section: str) -> str | None:
    """Why a section of a backend's row counts as timed on a shared machine, or None."""
    load = (row.get("load") or {}).get(section) or {}
    return "; ".join(load.get("reasons") or []) or None if load.get("contended") else None


def summarise(results: dict[str, dict], problems: dict[str, str],
              not_ranked: dict[str, str] | None = None) -> dict[str, Any]:
    """The run's speed section (see the module docstring); ``not_ranked`` names backends never called
    fastest whatever their speed (their served answers failed the audit: a speed of wrong answers)."""
    if not results:
        reason = reasons_once(dict(sorted(problems.items()))) or \
            "this run has no speed phase (its profile sets speed_steps to 0)"
        return {"available": False, "reason": reason, "problems": dict(problems), "backends": {}}
    machine_ceilings = ceilings(results)
    backends: dict[str, Any] = {}
    above: dict[str, str] = {}
    low_ceiling: dict[str, str] = {}
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
            "load": {section: load_figures((result.get("load") or {}).get(section))
                     for section in ("train", "predict") if (result.get("load") or {}).get(section)},
            "modes": modes(segment_rates(result)),
        }
        if predict.get("batch_s"):
            row["predict"] = rate_figures(predict["batch_s"], int(predict.get("images_per_batch") or 1))
        cost = result.get("flops") or {}
        row["train_mfu"] = mfu(row["train"]["images_per_s"]["median"], cost.get("train"), best.get("gflops"))
        if "predict" in row:
            row["inference_mfu"] = mfu(row["predict"]["images_per_s"]["median"], cost.get("forward"),
                                       best.get("gflops"))
        over = [f"{label} MFU {row[key_]:.0%}" for label, key_ in (("training", "train_mfu"),
                                                                  ("inference", "inference_mfu"))
                if (row.get(key_) or 0) > 1.0]
        if over and best.get("contended"):
            low_ceiling[name] = (f"{' and '.join(over)} of a ceiling ({best.get('gflops')} GFLOP/s, "
                                 f"{best.get('kernel')}) measured while other processes used the machine: that "
                                 "ceiling is low, so this MFU is not judged; the next quiet run measures it again")
        elif over:
            above[name] = (f"{name}'s {' and '.join(over)} of the {best.get('gflops')} GFLOP/s ceiling "
                           f"({best.get('kernel')}): the ceiling is wrong, not the backend")
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
            "train": _ranking(backends, "train", "fastest to train", not_ranked or {}),
            "predict": _ranking(backends, "predict", "fastest to infer", not_ranked or {}),
        },
        "shared": shared_sentence(backends),
        "above_ceiling": above,
        "low_ceiling": low_ceiling,
        "problems": dict(problems),
    }


def _img_s(value: float) -> str:
    return f"{value:,.0f}"


def _ranking(backends: dict[str, Any], part: str, noun: str, not_ranked: dict[str, str]) -> str:
    """Who is fastest, among the backends timed on a quiet machine whose answers passed the serving audit;
    the others named as left out."""
    busy = sorted(name for name, row in backends.items() if contention(row, part) and name not in not_ranked)
    wrong = sorted(name for name in backends if name in not_ranked)
    figures = _ranked({n: r for n, r in backends.items() if n not in busy and n not in wrong}, part)
    if busy and not figures and not wrong:
        return (f"none is called the {noun}: every backend ({', '.join(busy)}) was timed while other processes "
                "used the machine")
    sentence = intervals.ranking(figures, higher_is_better=True, noun=noun, fmt=_img_s, unit="img/s")
    if busy:
        sentence += f"; {', '.join(busy)} not ranked: timed while other processes used the machine"
    if wrong:
        sentence += f"; {', '.join(wrong)} not ranked: its served answers differ from its predict job's"
    return sentence


def shared_sentence(backends: dict[str, Any]) -> str:
    """One line when any section was timed on a shared machine: which, and how much; "" when none was."""
    return machine_shared_line({name: [(row.get("load") or {}).get(section) for section in ("train", "predict")
                                       if contention(row, section)] for name, row in backends.items()}, "timed")


def machine_shared_line(contended: dict[str, list[dict[str, Any]]], verb: str, figures: str = "those figures") -> str:
    """``The machine was shared while jax, torch were timed: other processes used up to 0.59 of a core; ...``:
    the backends with a contended reading, and the worst of what held them back (others' CPU, the
    hypervisor's steal, the container's throttling); "" when none was contended."""
    found = {name: [load for load in loads if load] for name, loads in contended.items()}
    found = {name: loads for name, loads in found.items() if loads}
    if not found:
        return ""
    loads = [load for all_loads in found.values() for load in all_loads]
    others = max(float(load.get("others_cores") or 0.0) for load in loads)
    reasons = [reason for load in loads for reason in load.get("reasons") or []]
    if any(reason.startswith("other processes") for reason in reasons):
        how = f"other processes used up to {others:.2f} of a core"
    else:
        how = reasons[0].split(" (limit")[0] if reasons else "its reading was over the limit"
    names = sorted(found)
    return (f"The machine was shared while {', '.join(names)} {'was' if len(names) == 1 else 'were'} {verb}: "
            f"{how}; {figures} are marked contended and not ranked")


def _ranked(backends: dict[str, Any], part: str) -> dict[str, tuple[float, float | None, float | None]]:
    out = {}
    for name, row in backends.items():
        figures = (row.get(part) or {}).get("images_per_s") or {}
        if figures.get("median"):
            out[name] = (figures["median"], figures.get("ci_low"), figures.get("ci_high"))
    return out
