"""Serving figures of a run, from its serve jobs: each scenario's figures, their intervals and validity,
the audit of the answers, and who serves fastest.

Pure numpy: takes each backend's ``serve.json`` and audit arrays (as
``harness.scoring.gather`` read them) and its predict job's probabilities,
and returns the plain JSON the analysis stores under ``serving``, which the
report, the benchmark JSON and the gate read. Every run is judged by
LoadGen's rules (``harness.scoring.loadgen_rules``):

* **SingleStream**: p50, p90 and p99 of the per-query latencies, each with a
  distribution-free 95% interval (``intervals.quantile_ci``); LoadGen's
  early-stopping estimates of the p90 and the p99; VALID or INVALID with the
  reasons (duration, query count, early stopping);
* **Offline**: images per second at each batch size (images over the time the
  backend spent answering), with a bootstrap 95% interval over blocks of
  batches, and the best batch size;
* **Server**: each offered rate's p99 (queueing included) and whether it stayed
  within the bound; the peak rate and the lowest failing rate above it, which
  bracket the true peak; LoadGen's verdict on the peak rate's run;
* **first query**: the job's start to its first answer (loading, building,
  tracing or compiling, the first image), and each scenario's first, cold
  query beside its steady median;
* **audit**: every kept answer against the predict job's probabilities for the
  same image and weights, within the fidelity check's tolerance (LoadGen's
  TEST01: answers logged during a timed run must match the accuracy run's).
  A backend whose answers do not match fails its ``test_serve`` case and is
  left out of every ranking here: its speed was not the speed of right answers.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.scoring import intervals, loadgen_rules
from harness.scoring import speed as speed_scoring
from harness.scoring.fidelity import Tolerance, compare_pair

AUDIT_TOLERANCE = Tolerance()
"""The fidelity check's tolerance for probabilities (``harness.scoring.fidelity``): the same
function of the same weights, up to float32 rounding in another summation order."""
HISTOGRAM_BINS = 40
OFFLINE_BLOCK = 10
"""Batches per block for the Offline interval (consecutive batches drift together, as steps do)."""

HOW = ("each backend served alone on the machine at {threads} thread(s), after its predict job, with the same "
       "weights: SingleStream for at least {seconds:g} s and {queries} queries; Offline at batch sizes {batches} "
       "for at least {sweep:g} s each; Server at Poisson-distributed arrivals, at most {trials} offered rates "
       "of at least {sweep:g} s each, searching the highest rate whose p99 stays within {bound:g} ms")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) * 1000.0, 4)


# -- the audit ---------------------------------------------------------------------------------
def audit(kept: Mapping[str, np.ndarray], predicted: np.ndarray | None,
          tolerance: Tolerance = AUDIT_TOLERANCE) -> dict[str, Any]:
    """Every timed run's kept answers against the predict job's probabilities for the same test rows.

    ``kept`` holds ``<run>__rows`` and ``<run>__probs`` arrays (the job's
    ``serve_audit.npz``). Returns per run the images compared, the largest
    absolute difference and the share of the same predicted class, whether it
    passed, and ``passed`` / ``message`` for the backend as a whole.
    """
    runs: dict[str, Any] = {}
    if predicted is None:
        return {"passed": None, "runs": runs, "images": 0,
                "message": "no predict outputs to audit the served answers against"}
    names = sorted({key[:-len("__rows")] for key in kept if key.endswith("__rows")})
    for name in names:
        rows = np.asarray(kept[f"{name}__rows"], dtype=np.int64)
        probs = np.asarray(kept.get(f"{name}__probs", np.zeros((0, 0))), dtype=np.float64)
        if not len(rows):
            runs[name] = {"images": 0, "max_abs_dp": 0.0, "agreement": 1.0, "passed": True}
            continue
        if probs.shape != (len(rows), predicted.shape[1]) or rows.min() < 0 or rows.max() >= len(predicted):
            runs[name] = {"images": len(rows), "max_abs_dp": None, "agreement": None, "passed": False,
                          "problem": f"answers of shape {probs.shape} for {len(rows)} rows do not fit the "
                                     f"predict outputs' {predicted.shape}"}
            continue
        worst, agreement = compare_pair(probs, predicted[rows])
        runs[name] = {"images": len(rows), "max_abs_dp": worst, "agreement": agreement,
                      "passed": tolerance.passes(worst, agreement)}
    images = sum(r["images"] for r in runs.values())
    failed = [name for name, r in runs.items() if not r["passed"]]
    if not runs:
        return {"passed": False, "runs": runs, "images": 0, "message": "the job kept no answers to audit"}
    if not failed:
        return {"passed": True, "runs": runs, "images": images,
                "message": f"{images} served answers in {len(runs)} timed runs match the predict job's "
                           f"(max |dp| at most {tolerance.max_abs_dp:g})"}
    first = runs[failed[0]]
    detail = first.get("problem") or (f"max |dp| {first['max_abs_dp']:.3g} (tolerance {tolerance.max_abs_dp:g}), "
                                      f"{first['agreement']:.1%} of {first['images']} with the same class")
    return {"passed": False, "runs": runs, "images": images, "failed_runs": failed,
            "message": f"the served answers differ from the predict job's for the same images and weights in "
                       f"{len(failed)} of {len(runs)} timed runs ({', '.join(failed[:4])}"
                       f"{', ...' if len(failed) > 4 else ''}); {failed[0]}: {detail}"}


# -- each scenario -------------------------------------------------------------------------------
def latency_figures(latency_s: list[float], p: float) -> dict[str, Any]:
    """One percentile of latencies (LoadGen's index) in ms, with its distribution-free 95% interval."""
    low, high = intervals.quantile_ci(latency_s, p)
    return {"value": _ms(loadgen_rules.percentile(latency_s, p)), "ci_low": _ms(low), "ci_high": _ms(high)}


def histogram(latency_s: list[float], bins: int = HISTOGRAM_BINS) -> dict[str, list[float]]:
    """Counts of latencies over log-spaced bins from the fastest to the slowest (for the report's chart)."""
    ms = np.asarray(latency_s, dtype=np.float64) * 1000.0
    low, high = float(ms.min()), float(ms.max())
    edges = np.geomspace(low, high, bins + 1) if high > low > 0 else np.array([low, low + 1e-3])
    counts, edges = np.histogram(ms, bins=edges)
    return {"edges_ms": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}


def _early(latency_s: list[float], p: float) -> dict[str, Any]:
    found = loadgen_rules.single_stream_estimate(latency_s, p)
    return {"estimate_ms": _ms(found.estimate), "discarded": found.discarded, "needed": found.needed,
            "reason": found.reason()}


def single_stream(measured: dict) -> dict[str, Any]:
    """SingleStream's percentiles, early-stopping estimates and LoadGen's verdict on the p90 and the p99."""
    latency = [float(s) for s in measured["latency_s"]]
    n, duration = len(latency), float(measured.get("duration_s") or 0.0)
    p90 = _early(latency, loadgen_rules.SINGLE_STREAM_PERCENTILE)
    p99 = _early(latency, loadgen_rules.MULTI_STREAM_PERCENTILE)
    validity = loadgen_rules.run_validity(duration, n, p90["reason"] or None)
    p99_validity = loadgen_rules.run_validity(duration, n, p99["reason"] or None)
    return {
        "queries": n, "duration_s": round(duration, 4),
        "p50_ms": latency_figures(latency, 0.50), "p90_ms": latency_figures(latency, 0.90),
        "p99_ms": latency_figures(latency, 0.99), "mean_ms": _ms(sum(latency) / n),
        "early_stopping": {"p90": p90, "p99": p99},
        "validity": validity.to_json(), "p99_validity": p99_validity.to_json(),
        "qps_with_overhead": round((n - 1) / duration, 3) if duration > 0 and n > 1 else None,
        "first_query_ms": _ms(measured.get("first_query_s")),
        "histogram": histogram(latency),
    }


def _block_means(values: list[float], block: int = OFFLINE_BLOCK) -> list[float]:
    blocks = [values[i:i + block] for i in range(0, len(values) - block + 1, block)]
    return [sum(b) / len(b) for b in blocks] if len(blocks) >= 3 else list(values)


def offline_batch(measured: dict) -> dict[str, Any]:
    """One batch size's images per second (over the time spent answering) and its 95% interval."""
    batch_s = [float(s) for s in measured["batch_s"]]
    batch, images = int(measured["batch"]), int(measured["images"])
    seconds = sum(batch_s)
    rate = images / seconds if seconds > 0 else None
    low = high = None
    means = _block_means(batch_s)
    if len(means) >= 2 and seconds > 0:
        slow, fast = intervals.bootstrap_ci(means, statistic=np.mean)
        low, high = batch / fast, batch / slow  # images per second from mean seconds per batch
        low, high = min(low, rate), max(high, rate)
    validity = loadgen_rules.run_validity(seconds, images, what="images", lasted="answered for")
    return {"batch": batch, "images": images, "seconds": round(seconds, 4), "batches": len(batch_s),
            "images_per_s": _round(rate), "ci_low": _round(low), "ci_high": _round(high),
            "first_batch_ms": _ms(measured.get("first_query_s")), "validity": validity.to_json()}


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def offline(measured: dict) -> dict[str, Any]:
    rows = [offline_batch(row) for row in measured.get("batches") or []]
    best = max((r for r in rows if r["images_per_s"]), key=lambda r: r["images_per_s"], default=None)
    return {"batches": rows, "best": best, "stopped": measured.get("stopped")}


def server_trial(measured: dict, bound_s: float) -> dict[str, Any]:
    """One offered rate's p99 (queueing included), whether it met the bound, and LoadGen's verdict."""
    latency = [float(s) for s in measured["latency_s"]]
    answered = len(latency)
    row: dict[str, Any] = {"rate": round(float(measured["rate"]), 4), "queries": int(measured["queries"]),
                           "answered": answered, "passed": bool(measured["passed"]),
                           "stopped_early": bool(measured.get("stopped_early")),
                           "scheduled_s": round(float(measured.get("scheduled_s") or 0.0), 4)}
    if answered:
        row["p99_ms"] = latency_figures(latency, loadgen_rules.SERVER_PERCENTILE)
        row["p50_ms"] = _ms(loadgen_rules.percentile(latency, 0.5))
    if row["passed"]:
        reasons = [loadgen_rules.server_early_stopping(latency, bound_s).reason() or None]
    else:  # the rate failed: how many more queries early stopping would want says nothing more
        reasons = [f"its p99 went over the {bound_s * 1000:g} ms bound"
                   + (f" (stopped after {answered} of {row['queries']} queries)" if row["stopped_early"] else "")]
    row["validity"] = loadgen_rules.run_validity(row["scheduled_s"], row["queries"], *reasons,
                                                 lasted="scheduled queries over").to_json()
    return row


def server(measured: dict) -> dict[str, Any]:
    bound_s = float(measured["bound_s"])
    trials = [server_trial(t, bound_s) for t in measured.get("trials") or []]
    search = measured.get("search") or {}
    peak, failed = search.get("peak_rate"), search.get("failed_rate")
    at_peak = next((t for t in trials if peak is not None and math.isclose(t["rate"], round(peak, 4))), None)
    if peak is None:
        why = "no offered rate met the bound" + (f", down to {min(t['rate'] for t in trials):.4g} queries/s"
                                                 if trials else "")
    elif failed is None:
        why = f"every offered rate met the bound; the peak is above {peak:.4g} queries/s (more trials would find it)"
    elif not search.get("finished"):
        why = (f"the search stopped at its limit of {search.get('max_trials')} trials: the peak lies between "
               f"{peak:.4g} and {failed:.4g} queries/s")
    else:
        why = ""
    return {"bound_ms": _ms(bound_s), "trials": trials, "peak_rate": _round(peak, 4),
            "failed_rate": _round(failed, 4), "finished": bool(search.get("finished")), "note": why,
            "first_rate": _round(measured.get("first_rate"), 4),
            "validity": (at_peak or {}).get("validity") or {"valid": False, "reasons": [why or "no peak rate"]},
            "p99_at_peak_ms": (at_peak or {}).get("p99_ms")}


def scenario_load(result: dict) -> dict[str, dict[str, Any]]:
    """Per scenario, the busiest reading of its timed sections (``load`` of each, from
    ``harness.workload.machine_load``): contended when any section was, with why."""
    sections = {"single_stream": [result.get("single_stream") or {}],
                "offline": list((result.get("offline") or {}).get("batches") or []),
                "server": list((result.get("server") or {}).get("trials") or [])}
    found = {}
    for scenario, measured in sections.items():
        readings = [m.get("load") for m in measured if isinstance(m, dict) and isinstance(m.get("load"), dict)]
        if not readings:
            continue
        worst = max(readings, key=lambda r: (bool(r.get("contended")), r.get("others_cores") or 0.0))
        found[scenario] = speed_scoring.load_figures(worst)
    return found


def backend_row(result: dict, kept: Mapping[str, np.ndarray] | None, predicted: np.ndarray | None) -> dict[str, Any]:
    """One backend's serving figures and audit."""
    single = single_stream(result["single_stream"])
    off = offline(result.get("offline") or {})
    srv = server(result["server"])
    trials = (result.get("server") or {}).get("trials") or []
    first_batches = [row.get("first_batch_ms") for row in off["batches"]]
    return {
        "single_stream": single, "offline": off, "server": srv,
        "first_query": {"phase_s": result.get("first_answer_s"), "single_stream_ms": single["first_query_ms"],
                        "single_stream_p50_ms": single["p50_ms"]["value"],
                        "offline_ms": first_batches[0] if first_batches else None,
                        "offline_batch": off["batches"][0]["batch"] if off["batches"] else None,
                        "server_ms": _ms(trials[0].get("first_query_s")) if trials else None},
        "peak_rss_mb": result.get("peak_rss_mb"),
        "load": scenario_load(result),
        "audit": audit(kept or {}, predicted),
        "fault": result.get("fault"),
        "threads": (result.get("settings") or {}).get("threads"),
        "configuration": {"threads": (result.get("settings") or {}).get("threads"),
                          "keras": (result.get("environment") or {}).get("keras"),
                          "backend_version": (result.get("environment") or {}).get("backend_version"),
                          "image_data_format": (result.get("environment") or {}).get("image_data_format"),
                          "jit_compile": (result.get("environment") or {}).get("jit_compile")},
    }


# -- the run's section ----------------------------------------------------------------------------
def summarise(results: Mapping[str, dict], kept: Mapping[str, Mapping[str, np.ndarray]],
              predicted: Mapping[str, np.ndarray], problems: Mapping[str, str]) -> dict[str, Any]:
    """The run's serving section (see the module docstring)."""
    if not results:
        reason = "; ".join(f"{name}: {why}" for name, why in sorted(problems.items())) or \
            "this run serves nothing (its profile sets serve_seconds to 0)"
        return {"available": False, "reason": reason, "problems": dict(problems), "backends": {}}
    backends = {name: backend_row(result, kept.get(name), predicted.get(name))
                for name, result in sorted(results.items())}
    wrong = {name: row["audit"]["message"] for name, row in backends.items() if row["audit"]["passed"] is False}
    ranked = {name: row for name, row in backends.items() if name not in wrong}

    def quiet(scenario: str) -> dict[str, dict]:
        return {name: row for name, row in ranked.items()
                if not ((row.get("load") or {}).get(scenario) or {}).get("contended")}
    first = next(iter(results.values()))
    settings = first.get("settings") or {}
    how = HOW.format(threads=settings.get("threads"), seconds=settings.get("seconds") or 0,
                     queries=settings.get("min_queries"), batches=", ".join(map(str, settings.get("offline_batches")
                                                                                   or [])),
                     sweep=settings.get("sweep_seconds") or 0, trials=settings.get("rate_trials"),
                     bound=settings.get("p99_bound_ms") or 0)
    return {
        "available": True, "how": how, "backends": backends, "problems": dict(problems),
        "audit_failed": wrong, "shared": shared_sentence(backends),
        "ranking": {
            "single_stream": _shared(_ranked_or_not(
                intervals.ranking(_p90s(quiet("single_stream")), higher_is_better=False,
                                  noun=NOUNS["single_stream"], fmt=_ms_text, unit="ms"), "single_stream", ranked,
                wrong), ranked, quiet("single_stream"), "single_stream"),
            "offline": _shared(_ranked_or_not(
                intervals.ranking(_offline_best(quiet("offline")), higher_is_better=True, noun=NOUNS["offline"],
                                  fmt=_rate_text, unit="img/s"), "offline", ranked, wrong), ranked, quiet("offline"),
                               "offline"),
            "server": _shared(_ranked_or_not(server_ranking(quiet("server")), "server", ranked, wrong), ranked,
                              quiet("server"), "server"),
        },
    }


def shared_sentence(backends: Mapping[str, dict]) -> str:
    """One line when any scenario was timed on a shared machine: which backends, and how much; "" if none."""
    return speed_scoring.machine_shared_line(
        {name: [load for load in (row.get("load") or {}).values() if (load or {}).get("contended")]
         for name, row in backends.items()}, "served", "those serving figures")


def _shared(sentence: str, ranked: Mapping[str, Any], quiet: Mapping[str, Any], scenario: str) -> str:
    """The ranking sentence, naming the backends it left out because they were timed on a shared machine."""
    busy = sorted(set(ranked) - set(quiet))
    if not busy:
        return sentence
    if not quiet:
        return (f"none is called the {NOUNS[scenario]}: every backend ({', '.join(busy)}) was timed while other "
                "processes used the machine")
    return f"{sentence}; {', '.join(busy)} not ranked: timed while other processes used the machine"


NOUNS = {"single_stream": "fastest to answer one image at a time (SingleStream p90)",
         "offline": "fastest Offline (images/s at its best batch size)",
         "server": "highest Server rate within the latency bound"}


def _ranked_or_not(sentence: str, scenario: str, ranked: Mapping[str, Any], wrong: Mapping[str, str]) -> str:
    """The ranking sentence, saying which backends it leaves out because their answers were wrong."""
    if not wrong:
        return sentence
    names = intervals_names(sorted(wrong))
    if not ranked:
        return (f"no backend is ranked as the {NOUNS[scenario]}: {names} served answers that differ from "
                "its predict job's")
    return f"{sentence} ({names} left out: its served answers differ from its predict job's)"


def _ms_text(value: float) -> str:
    return f"{value:.3g}"


def _rate_text(value: float) -> str:
    return f"{value:,.0f}"


def _p90s(backends: Mapping[str, dict]) -> dict[str, tuple[float, float | None, float | None]]:
    out = {}
    for name, row in backends.items():
        p90 = row["single_stream"]["p90_ms"]
        if p90["value"] is not None:
            out[name] = (p90["value"], p90["ci_low"], p90["ci_high"])
    return out


def _offline_best(backends: Mapping[str, dict]) -> dict[str, tuple[float, float | None, float | None]]:
    out = {}
    for name, row in backends.items():
        best = row["offline"]["best"]
        if best:
            out[name] = (best["images_per_s"], best["ci_low"], best["ci_high"])
    return out


def server_ranking(backends: Mapping[str, dict]) -> str:
    """Who sustains the highest offered rate within the bound: each peak is known only to lie between
    the highest rate that passed and the lowest that failed above it, so two backends whose brackets
    overlap are tied."""
    peaks = {name: (row["server"]["peak_rate"], row["server"]["failed_rate"]) for name, row in backends.items()
             if row["server"]["peak_rate"] is not None}
    noun = NOUNS["server"]
    if not peaks:
        return f"nothing to rank: no backend met the Server's latency bound, so none has the {noun}"
    order = sorted(peaks, key=lambda name: (-peaks[name][0], name))
    best, others = order[0], order[1:]
    low, high = peaks[best]
    bracket = f"{low:,.1f}-{high:,.1f} queries/s" if high is not None else f"above {low:,.1f} queries/s"
    if not others:
        return f"{best} is the only one with a peak rate ({bracket}), so there is nothing to rank it against"
    tied = [name for name in others if peaks[name][1] is None or peaks[name][1] > low]
    if tied:
        return (f"{intervals_names([best] + tied)} are tied for the {noun}: each peak is bracketed by the rates "
                "tried, and their brackets overlap")
    runner = others[0]
    return (f"{best} has the {noun}: its peak ({bracket}) lies above {runner}'s "
            f"({peaks[runner][0]:,.1f}-{peaks[runner][1]:,.1f})")


def intervals_names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def serve_figures(row: dict[str, Any], result: dict) -> dict[str, Any]:
    """A ``test_serve`` case's ``extra_info["serve"]``: every SingleStream latency, and each scenario's
    figures, which the gate (``kbench gate --watch p90``) and pytest-benchmark compare read."""
    single, off, srv = row["single_stream"], row["offline"], row["server"]
    return {
        "single_stream_latency_ms": [round(float(s) * 1000.0, 4) for s in result["single_stream"]["latency_s"]],
        "single_stream": {k: single[k] for k in ("queries", "duration_s", "p50_ms", "p90_ms", "p99_ms",
                                                 "early_stopping", "validity", "p99_validity")},
        "offline": {"batches": [{k: b[k] for k in ("batch", "images_per_s", "ci_low", "ci_high", "validity")}
                                for b in off["batches"]],
                    "best_batch": (off["best"] or {}).get("batch"),
                    "best_images_per_s": (off["best"] or {}).get("images_per_s"), "stopped": off["stopped"]},
        "server": {"bound_ms": srv["bound_ms"], "peak_rate": srv["peak_rate"], "failed_rate": srv["failed_rate"],
                   "finished": srv["finished"], "validity": srv["validity"],
                   "trials": [{"rate": t["rate"], "passed": t["passed"], "p99_ms": (t.get("p99_ms") or {}).get("value"),
                               "answered": t["answered"], "queries": t["queries"]} for t in srv["trials"]]},
        "first_query": row["first_query"],
        "peak_rss_mb": row["peak_rss_mb"],
        "audit": {k: row["audit"].get(k) for k in ("passed", "images", "message")},
        "threads": row["threads"],
        "measured": "alone: no other job of the run ran during the timed runs",
    }
