"""The report's serving section: each backend served in LoadGen's scenarios, alone, with LoadGen's verdicts.

Reads only the analysis's ``serving`` section (``harness.scoring.serving``);
both templates lay out what ``serving_view`` returns, and the renderer draws
its charts from ``chart_data``.
"""
from __future__ import annotations

from typing import Any

from harness.report.formats import DASH, num, rate
from harness.scoring.record import RunAnalysis

WHY = ("SingleStream: one image per query, each sent when the previous one was answered; its p90 is the "
       "figure LoadGen reports. Offline: every image available at once, answered in batches; images/s at each "
       "batch size. Server: queries arriving at random (Poisson) at an offered rate, answered one at a time, "
       "latency counted from arrival (queueing included); the peak is the highest rate whose p99 stayed within "
       "the bound, bracketed by the rates tried. Percentiles carry a distribution-free 95% interval; LoadGen's "
       "early-stopping estimate is an upper bound it is 99% sure of. VALID or INVALID is LoadGen's verdict on "
       "the run (its default minimums: 10 s and 100 queries). Every backend's answers during the timed runs "
       "were checked against its predict job's for the same images; a backend that failed is never called "
       "the fastest.")
SINGLE_COLUMNS = ["Queries", "p50 ms", "p90 ms", "p90 early stopping", "p99 ms", "p99 early stopping",
                  "p90 verdict", "Audit"]
SERVER_COLUMNS = ["Bound ms", "Peak queries/s", "Peak lies in", "p99 at peak ms", "Trials", "Verdict"]
FIRST_COLUMNS = ["Start to first answer s", "SingleStream first query ms", "steady p50 ms",
                 "Offline first batch ms", "Server first query ms", "Peak RSS MB"]


SCENARIO_NAMES = {"single_stream": "SingleStream", "offline": "Offline", "server": "Server"}


def _figure(figures: dict[str, Any] | None, digits: int = 3) -> str:
    """``1.23 (1.20–1.26)``: a value with its interval; an unknown end as ?."""
    if not figures or figures.get("value") is None:
        return DASH
    low, high = figures.get("ci_low"), figures.get("ci_high")
    if low is None and high is None:
        return num(figures["value"], digits)
    return (f"{num(figures['value'], digits)} ({num(low, digits) if low is not None else '?'}–"
            f"{num(high, digits) if high is not None else '?'})")


def _early(found: dict[str, Any]) -> str:
    if found.get("estimate_ms") is None:
        return f"{DASH} ({found.get('reason')})"
    return f"{num(found['estimate_ms'], 3)} ({found.get('discarded')} discarded)"


def _verdict(validity: dict[str, Any] | None) -> str:
    if not validity:
        return DASH
    if validity.get("valid"):
        return "VALID"
    return "INVALID: " + "; ".join(validity.get("reasons") or [])


def _rate_span(row: dict[str, Any]) -> str:
    if row.get("images_per_s") is None:
        return DASH
    if row.get("ci_low") is None or row.get("ci_high") is None:
        return rate(row["images_per_s"])
    return f"{rate(row['images_per_s'])} ({rate(row['ci_low'])}–{rate(row['ci_high'])})"


def serving_view(analysis: RunAnalysis) -> dict[str, Any]:
    section = analysis.serving or {}
    view: dict[str, Any] = {"present": analysis.serving is not None, "available": bool(section.get("available")),
                            "reason": section.get("reason") or "", "how": section.get("how") or "", "why": WHY,
                            "single_stream": {"columns": SINGLE_COLUMNS, "rows": []},
                            "offline": {"columns": [], "rows": []},
                            "server": {"columns": SERVER_COLUMNS, "rows": []},
                            "first_query": {"columns": FIRST_COLUMNS, "rows": []},
                            "ranking": [], "audit_failed": sorted((section.get("audit_failed") or {}).items()),
                            "problems": sorted((section.get("problems") or {}).items()), "notes": []}
    if not view["available"]:
        return view
    backends = section.get("backends") or {}
    batches = sorted({b["batch"] for row in backends.values() for b in row["offline"]["batches"]})
    view["offline"]["columns"] = [f"batch {b} img/s" for b in batches] + ["Best batch", "Best verdict"]
    for name, row in backends.items():
        single, off, srv = row["single_stream"], row["offline"], row["server"]
        audited = row["audit"]
        wrong = audited.get("passed") is False
        label = name + (f" (fault: {row['fault']})" if row.get("fault") else "")
        audit_text = (f"✓ {audited.get('images')} answers match" if audited.get("passed")
                      else "FAIL: answers differ from predict" if wrong else DASH)
        view["single_stream"]["rows"].append({
            "name": label, "valid": single["validity"]["valid"], "wrong": wrong, "cells": [
                f"{single['queries']:,} in {num(single['duration_s'], 1)} s", _figure(single["p50_ms"]),
                _figure(single["p90_ms"]), _early(single["early_stopping"]["p90"]), _figure(single["p99_ms"]),
                _early(single["early_stopping"]["p99"]), _verdict(single["validity"]), audit_text]})
        by_batch = {b["batch"]: b for b in off["batches"]}
        best = off.get("best") or {}
        view["offline"]["rows"].append({
            "name": label, "wrong": wrong, "valid": (best.get("validity") or {}).get("valid", False), "cells": [
                _rate_span(by_batch[b]) if b in by_batch else DASH for b in batches] + [
                str(best.get("batch", DASH)), _verdict(best.get("validity"))]})
        if off.get("stopped"):
            view["notes"].append(f"{name}: the Offline sweep stopped: {off['stopped']}")
        peak, failed = srv.get("peak_rate"), srv.get("failed_rate")
        bracket = (f"{num(peak, 1)}–{num(failed, 1)}" if peak is not None and failed is not None
                   else f"above {num(peak, 1)}" if peak is not None else
                   f"below {num(failed, 1)}" if failed is not None else DASH)
        view["server"]["rows"].append({
            "name": label, "wrong": wrong, "valid": (srv.get("validity") or {}).get("valid", False), "cells": [
                num(srv.get("bound_ms"), 1), num(peak, 1), bracket, _figure(srv.get("p99_at_peak_ms")),
                str(len(srv.get("trials") or [])), _verdict(srv.get("validity"))]})
        if srv.get("note"):
            view["notes"].append(f"{name}: {srv['note']}")
        for scenario, load in sorted((row.get("load") or {}).items()):
            if (load or {}).get("contended"):
                view["notes"].append(f"{name}: {SCENARIO_NAMES.get(scenario, scenario)} timed on a shared machine: "
                                     f"{'; '.join(load.get('reasons') or [])}")
        first = row.get("first_query") or {}
        view["first_query"]["rows"].append({"name": label, "cells": [
            num(first.get("phase_s"), 2), num(first.get("single_stream_ms"), 1),
            num(first.get("single_stream_p50_ms"), 3),
            f"{num(first.get('offline_ms'), 1)} (batch {first.get('offline_batch')})"
            if first.get("offline_ms") is not None else DASH,
            num(first.get("server_ms"), 2), rate(row.get("peak_rss_mb"))]})
    ranking = section.get("ranking") or {}
    view["ranking"] = [text for text in (ranking.get("single_stream"), ranking.get("offline"), ranking.get("server"))
                       if text]
    return view


def chart_data(analysis: RunAnalysis) -> dict[str, Any]:
    """What the serving charts draw, per backend: the SingleStream latency histogram with its percentiles,
    Offline images/s per batch size, and the Server's p99 per offered rate."""
    section = analysis.serving or {}
    if not section.get("available"):
        return {}
    out: dict[str, Any] = {"latency": {}, "offline": {}, "server": {}, "bound_ms": None}
    for name, row in (section.get("backends") or {}).items():
        single = row["single_stream"]
        out["latency"][name] = {"histogram": single["histogram"],
                                "marks": {"p50": single["p50_ms"]["value"], "p90": single["p90_ms"]["value"],
                                          "p99": single["p99_ms"]["value"],
                                          "p90 early stopping": single["early_stopping"]["p90"]["estimate_ms"]}}
        out["offline"][name] = [(b["batch"], b["images_per_s"], b["ci_low"], b["ci_high"])
                                for b in row["offline"]["batches"] if b["images_per_s"]]
        out["server"][name] = [(t["rate"], (t.get("p99_ms") or {}).get("value"), t["passed"], t["stopped_early"])
                               for t in row["server"]["trials"] if t.get("p99_ms")]
        out["bound_ms"] = row["server"].get("bound_ms")
    return out


def headline_lines(analysis: RunAnalysis) -> list[str]:
    """The summary's serving sentences: who serves fastest (or who is tied), every failed audit, and whether
    the machine was shared while serving was timed."""
    section = analysis.serving or {}
    if not section.get("available"):
        return []
    lines = [f"{name}'s served answers are wrong: {why}." for name, why in sorted(
        (section.get("audit_failed") or {}).items())]
    ranking = section.get("ranking") or {}
    return lines + [text + "." for text in (ranking.get("single_stream"), ranking.get("offline"),
                                             ranking.get("server"), section.get("shared")) if text]
