"""The report's content as plain rows and sentences, shared by the HTML and markdown templates.

``build_view`` reads only the analysis (a ``RunAnalysis``: ``ensemble.json``), the
baseline assessment, the run history and optional thumbnails, and formats
every number here, so the templates only lay things out. Strings that come
from a run (backend names, reasons, paths, log lines) are passed through as
they are: escaping them is the templates' job (autoescaped HTML, escaped
markdown), never this module's.
"""
from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from harness.baselines import NO_BASELINE
from harness.report.device_view import device_facts
from harness.report.fidelity_view import fidelity_view, step_view, train_accuracy_view
from harness.report.formats import DASH, general, num, pct, points, rate
from harness.report.serving_view import headline_lines as serving_headline
from harness.report.serving_view import serving_view
from harness.report.speed_view import ceiling_facts, speed_view
from harness.scoring import variants
from harness.scoring.record import RunAnalysis

__all__ = ["DASH", "build_view", "general", "num", "pct", "points", "rate"]

LOG_TAIL_LINES = 40
LOG_TAIL_CHARS = 4000
CASE_TEXT = {
    "ensemble_right_all_members_wrong": "ensemble right, every backend wrong",
    "ensemble_right_majority_wrong": "ensemble right, most backends wrong",
    "ensemble_wrong_majority_right": "ensemble wrong, most backends right",
}


def _mean(values: Any) -> float | None:
    return sum(values) / len(values) if isinstance(values, list) and values else None


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def class_name(classes: Sequence[str], index: int) -> str:
    return classes[index] if 0 <= index < len(classes) else str(index)


# -- sections -------------------------------------------------------------------------
def what_ran(analysis: RunAnalysis) -> list[tuple[str, str]]:
    settings = analysis.settings
    profile = settings.get("profile") or {}
    dataset = settings.get("dataset") or {}
    host = settings.get("host") or {}
    sizes = analysis.data.get("sizes") or {}

    def count(key: str) -> str:
        value = sizes.get(key, profile.get(f"n_{key}"))
        return "all" if value is None else f"{value:,}"

    facts = [
        ("Run", str(analysis.run_id)),
        ("Profile", (f"{profile.get('name', DASH)}: {count('train')} training, {count('val')} "
                     f"validation, {count('test')} test images; {profile.get('epochs', DASH)} "
                     f"epochs, batch {profile.get('batch_size', DASH)}, learning rate "
                     f"{profile.get('learning_rate', DASH)}, seed {profile.get('seed', DASH)}")),
        ("Model", _model_text(analysis)),
        ("Data set", dataset.get("bundled") or dataset.get("path") or dataset.get("kind") or DASH),
        ("Data fingerprint", str(analysis.fingerprint or DASH)),
        ("Executor", str(settings.get("executor") or DASH)),
        ("Harness", (f"version {settings.get('harness_version', DASH)}, Python "
                     f"{host.get('python', DASH)} on {host.get('platform', DASH)}, "
                     f"{host.get('cpus', DASH)} CPUs")),
        ("Started", str(settings.get("created_at") or DASH)
         + (f" (resumed {settings['resumed_at']})" if settings.get("resumed_at") else "")),
        ("Ensemble checked", f"{analysis.method}: {variants.DESCRIPTIONS.get(analysis.method, '')}"),
    ]

    return facts + device_facts(analysis) + ceiling_facts(analysis)


def _model_text(analysis: RunAnalysis) -> str:
    """The model's name and file hash, then its size and cost as the jobs counted them on the model itself."""
    spec = analysis.settings.get("model") or {}
    name = f"{analysis.model_name}" + (f" (file sha256 {spec['sha256'][:12]})" if spec.get("sha256") else "")
    for member in analysis.members.values():
        flops = member.flops or {}
        if member.parameters or flops:
            parts = [name, f"{member.parameters:,} parameters" if member.parameters else None,
                     f"{flops['forward_flops_per_image'] / 1e6:,.1f} MFLOP per image to infer"
                     if "forward_flops_per_image" in flops else None,
                     f"{flops['train_flops_per_image'] / 1e6:,.1f} MFLOP to train on"
                     if "train_flops_per_image" in flops else None]
            return ", ".join(p for p in parts if p)
    return name


def _device_text(env: dict[str, Any]) -> str:
    """The CPU a job ran on, or its GPU and the CUDA its backend was built with."""
    gpu = env.get("gpu") or {}
    if gpu.get("name"):
        return f"{gpu['name']} (CUDA {gpu.get('cuda') or DASH})"
    return str(env.get("cpu_model", DASH))


def environments(analysis: RunAnalysis) -> list[list[str]]:
    rows = []
    for name, member in analysis.members.items():
        env = member.environment or {}
        threads = env.get("threads") or {}
        rows.append([name, str(env.get("python", DASH)), str(env.get("keras", DASH)),
                     f"{env.get('backend_library', name)} {env.get('backend_version', '')}".strip(),
                     str(env.get("numpy", DASH)), _device_text(env),
                     str(threads.get("requested", DASH)), str(env.get("image_data_format", DASH)),
                     str(env.get("hostname", DASH))])
    return rows


def results(analysis: RunAnalysis, verdicts: dict[str, dict], unchecked: str | None = None
            ) -> dict[str, Any]:
    """The seed's table (backend, training accuracy, loss) extended with test and speed figures.

    ``unchecked``: what the baseline column says for a backend without a verdict
    (``NO_BASELINE`` when the run had no baseline to check against).
    """
    members = analysis.members
    parallel = (analysis.harness or {}).get("parallel")
    where = "in job, shared" if parallel is None or parallel > 1 else "in job, one at a time"
    columns = ["Backend", "State", "Train acc.", "Train loss", "Test acc.", "NLL", "ECE", "Brier",
               f"Train img/s ({where})", "Epoch s", f"Infer img/s ({where})", "Latency p50 / p99 ms",
               "Peak RSS MB", "Baseline"]
    rows = []
    best = analysis.best_member.name if analysis.best_member else None
    for name, m in members.items():
        test = m.test
        verdict = verdicts.get(name)
        rss = (m.peak_rss_mb or {}).get("train")
        rows.append({
            "name": name, "state": m.state or DASH, "best": name == best,
            "ok": m.ok,
            "cells": [pct(m.train_accuracy), num(m.train_loss), pct(getattr(test, "accuracy", None)),
                      num(getattr(test, "nll", None)), num(getattr(test, "ece", None)),
                      num(getattr(test, "brier", None)),
                      rate(m.train_images_per_s), num(_mean(m.epoch_seconds), 1),
                      rate(m.inference_images_per_s),
                      f"{num(m.latency_p50_ms, 0)} / {num(m.latency_p99_ms, 0)}",
                      rate(rss)],
            "verdict": (unchecked if verdict is None and unchecked and test is not None
                        else _verdict_text(verdict)),
            "verdict_passed": None if verdict is None else verdict.get("passed"),
        })
    return {"columns": columns, "rows": rows}


def _verdict_text(verdict: dict | None) -> str:
    if verdict is None:
        return DASH
    if verdict.get("passed") is None:
        return NO_BASELINE
    bound = verdict["expected"] - verdict["tolerance"]
    word = "pass" if verdict["passed"] else "FAIL"
    return f"{word} (≥ {pct(bound)})"


def ensemble_variants(analysis: RunAnalysis) -> list[dict[str, Any]]:
    scores = (analysis.recommendation or {}).get("scores") or {}
    recommended = (analysis.recommendation or {}).get("variant")
    rows = []
    for name, v in analysis.variants.items():
        test = v.test
        better = (v.versus_best_member or {}).get("better", {})
        rows.append({
            "name": name, "description": variants.DESCRIPTIONS.get(name, ""),
            "checked": name == analysis.method, "recommended": name == recommended,
            "cells": [num(v.temperature, 3) if v.temperature is not None else DASH,
                      pct(test.accuracy), num(test.nll), num(test.ece), num(test.brier),
                      points(v.gain_over_best), _marks(better), num(scores.get(name), 4)],
            "better": better,
            "all_three": (v.versus_best_member or {}).get("all_three"),
        })
    for name, reason in analysis.unavailable_variants.items():
        rows.append({"name": name, "description": variants.DESCRIPTIONS.get(name, ""),
                     "unavailable": reason, "cells": [], "checked": name == analysis.method,
                     "recommended": False, "better": {}, "all_three": None})
    order = {name: i for i, name in enumerate(variants.NAMES)}
    rows.sort(key=lambda row: order.get(row["name"], len(order)))
    return rows


def _marks(better: dict[str, bool]) -> str:
    """✓/✗ for beating the best backend on accuracy, NLL and ECE, in that order."""
    if not better:
        return DASH
    return " ".join("✓" if better.get(key) else "✗" for key in ("accuracy", "nll", "ece"))


def _beats(better: dict[str, bool]) -> str:
    """A phrase like 'is better on NLL and ECE, not on accuracy' from ``versus_best_member``."""
    names = {"accuracy": "accuracy", "nll": "NLL", "ece": "ECE"}
    wins = [names[k] for k in names if better.get(k)]
    losses = [names[k] for k in names if not better.get(k)]

    def join(items: list[str]) -> str:
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    if not losses:
        return "is better on all three: accuracy, NLL and ECE"
    if not wins:
        return "is better on none of accuracy, NLL and ECE"
    return f"is better on {join(wins)}, not on {join(losses)}"


def weights(analysis: RunAnalysis) -> dict[str, Any]:
    """Each member's weight under each weighted variant, and its own fitted temperature."""
    shown = [n for n in ("seed", "uniform", "val-accuracy", "fitted") if n in analysis.variants]
    rows = []
    for name, m in analysis.members.items():
        if not m.ok:
            continue
        before, after = m.test, m.test_calibrated
        rows.append({"name": name, "cells": [
            num(analysis.variants[v].weights.get(name), 3) for v in shown] + [
            num(m.temperature, 3), f"{num(getattr(before, 'ece', None))} → {num(after.ece)}"
            if after else DASH, f"{num(getattr(before, 'nll', None))} → {num(after.nll)}" if after else DASH]})
    return {"columns": [*(f"w ({v})" for v in shown), "own T", "ECE before → after T",
                        "NLL before → after T"], "rows": rows}


def reliability_panels(analysis: RunAnalysis) -> tuple[list[tuple[str, dict]], str | None]:
    """The two reliability diagrams worth showing: a scaled variant before and after its temperature."""
    found = analysis.variants
    recommended = (analysis.recommendation or {}).get("variant")
    pick = next((n for n in (recommended, "fitted+T", "seed+T", "uniform+T")
                 if n and variants.is_scaled(n) and n in found), None)
    if pick is None:
        name = analysis.method if analysis.method in found else next(iter(found), None)
        if name is None:
            return [], None
        v = found[name]
        return [(f"{name}: ECE {num(v.test.ece)}", v.reliability)], name
    v, base = found[pick], variants.base_rule(pick)
    return [(f"{base}, before T: ECE {num(getattr(v.test_before, 'ece', None))}", v.reliability_before),
            (f"{pick} (T = {num(v.temperature, 2)}): ECE {num(v.test.ece)}",
             v.reliability)], pick


def per_class(analysis: RunAnalysis) -> dict[str, Any]:
    classes = analysis.classes or []
    rows = [{"name": name, "cells": [pct(v, 0) for v in m.per_class]}
            for name, m in analysis.members.items() if m.per_class]
    ens = analysis.ensemble
    if ens is not None and ens.per_class:
        rows.append({"name": f"ensemble ({ens.method})", "ensemble": True,
                     "cells": [pct(v, 0) for v in ens.per_class]})
    return {"classes": classes, "rows": rows}


def pairwise(analysis: RunAnalysis) -> list[list[str]]:
    return [[row["a"], row["b"], pct(row["disagreement"]), num(row["kl_ab"]), num(row["kl_ba"])]
            for row in analysis.pairwise or []]


def _cells(probs: Sequence[float], digits: int = 3) -> list[str]:
    return [f"{100 * p:.{digits}f}%" for p in probs]


def image_table(analysis: RunAnalysis, thumbs: Mapping[int, str], limit: int | None = None
                ) -> dict[str, Any] | None:
    """The seed's per-image table: per backend p_i (and its share w_i p_i), the ensemble, the answer."""
    table = analysis.table
    if not table or not table.get("indices"):
        return None
    classes = analysis.classes or []
    names = list(table["members"])
    count = len(table["indices"]) if limit is None else min(limit, len(table["indices"]))
    images = []
    for row in range(count):
        index, label = table["indices"][row], table["labels"][row]
        ensemble = table["ensemble"][row]
        members = []
        for name in names:
            probs = table["members"][name][row]
            shares = (table.get("contributions") or {}).get(name)
            members.append({"name": name, "weight": num(table["weights"].get(name), 3),
                            "top": max(range(len(probs)), key=probs.__getitem__),
                            "cells": _cells(probs),
                            "shares": _cells(shares[row], 2) if shares else None})
        predicted = max(range(len(ensemble)), key=ensemble.__getitem__)
        images.append({
            "number": index + 1, "index": index, "label": label,
            "label_name": class_name(classes, label), "thumb": thumbs.get(index),
            "members": members,
            "combined": (_cells(table["combined"][row])
                         if table.get("combined") and table.get("temperature") is not None else None),
            "ensemble": _cells(ensemble), "top": predicted,
            "correct": predicted == label, "predicted_name": class_name(classes, predicted),
        })
    return {"variant": table["variant"], "soft": table.get("soft", True),
            "temperature": table.get("temperature"), "classes": classes,
            "class_numbers": list(range(len(classes))), "images": images,
            "total": len(table["indices"]), "shown": count}


def rescue(analysis: RunAnalysis, thumbs: Mapping[int, str]) -> dict[str, Any] | None:
    found = analysis.rescue
    if not found:
        return None
    classes = analysis.classes or []
    examples = []
    for e in found.get("examples", []):
        examples.append({
            "index": e["index"], "number": e["index"] + 1, "case": CASE_TEXT.get(e["case"], e["case"]),
            "label_name": class_name(classes, e["label"]), "thumb": thumbs.get(e["index"]),
            "ensemble": f"{class_name(classes, e['ensemble']['class'])} {pct(e['ensemble']['p'], 0)}",
            "ensemble_right": e["ensemble"]["class"] == e["label"],
            "members": [{"name": n, "text": f"{class_name(classes, p['class'])} {pct(p['p'], 0)}",
                         "right": p["class"] == e["label"]} for n, p in e["members"].items()],
        })
    return {"n_images": found["n_images"], "n_members": found["n_members"],
            "counts": [(CASE_TEXT[c], found[f"n_{c}"]) for c in CASE_TEXT],
            "examples": examples}


def left_out(analysis: RunAnalysis) -> list[dict[str, str]]:
    statuses = analysis.statuses or {}
    rows = []
    for name, m in analysis.members.items():
        if m.ok:
            continue
        tails = []
        for phase in ("train", "predict"):
            status = statuses.get(f"{name}/{phase}") or {}
            if status.get("log_tail") and status.get("state") not in ("succeeded", "skipped"):
                lines = status["log_tail"].splitlines()[-LOG_TAIL_LINES:]
                tails.append({"phase": phase, "text": "\n".join(lines)[-LOG_TAIL_CHARS:]})
        rows.append({"name": name, "state": m.state or "failed",
                     "reason": m.reason or "no reason was recorded", "logs": tails})
    return rows


def baseline_view(assessment: dict[str, Any] | None) -> dict[str, Any]:
    if not assessment:
        return {"state": "missing", "message": "no baseline was assessed", "rows": [], "gap": None}
    rows = []
    for verdict in [*assessment.get("members", []), assessment.get("ensemble")]:
        if not verdict:
            continue
        rows.append({"subject": verdict["subject"], "passed": verdict.get("passed"),
                     "cells": [pct(verdict.get("measured")), pct(verdict.get("expected")),
                               pct(verdict.get("tolerance")),
                               pct(verdict.get("spread")) if verdict.get("spread") is not None else DASH],
                     "message": verdict.get("message", "")})
    return {"state": assessment.get("state"), "message": assessment.get("message", ""),
            "path": assessment.get("path"), "variant": assessment.get("variant"), "rows": rows,
            "gap": assessment.get("gap")}


def history_rows(entries: Sequence[dict[str, Any]], current: str | None,
                 order: Sequence[str] = ()) -> dict[str, Any]:
    """Earlier runs, newest first; backends in ``order`` (this run's), then any others."""
    members = list(dict.fromkeys([*order, *(name for e in entries for name in e.get("members", {}))]))
    rows = []
    for e in reversed(list(entries)):
        ens = e.get("ensemble") or {}
        rows.append({"run_id": e.get("run_id"), "current": e.get("run_id") == current,
                     "cells": [str(e.get("created_at") or e.get("recorded_at") or DASH),
                               f"{pct(ens.get('accuracy'))} ({e.get('method') or DASH})",
                               points(e.get("gain_over_best")),
                               *(pct(((e.get("members") or {}).get(n) or {}).get("test_accuracy"))
                                 for n in members),
                               *(rate(((e.get("members") or {}).get(n) or {}).get("train_images_per_s"))
                                 for n in members)]})
    return {"columns": ["Run", "Started", "Ensemble acc.", "Gain", *(f"{n} acc." for n in members),
                        *(f"{n} img/s" for n in members)], "rows": rows, "members": members}


# -- headline ------------------------------------------------------------------------
def headline(analysis: RunAnalysis) -> list[str]:
    """A few plain sentences: what the run says, before any table."""
    lines = []
    members = analysis.members
    ok = [n for n, m in members.items() if m.ok]
    missing = ", ".join(f"{n} ({members[n].state})" for n in members if n not in ok)
    lines.append(f"{len(ok)} of {len(members)} backends finished"
                 + (f"; left out: {missing}." if missing else "."))
    ens = analysis.ensemble
    best = analysis.best_member
    if ens and best:
        gain = analysis.gain_over_best or 0.0
        relation = (f"{100 * gain:.1f} points above" if gain > 0 else
                    f"{-100 * gain:.1f} points below" if gain < 0 else "level with")
        lines.append(f"The {ens.method} ensemble of {len(ens.members)} backends reaches "
                     f"{pct(ens.test.accuracy)} test accuracy, {relation} the best "
                     f"backend, {best.name} ({pct(best.accuracy)}).")
    elif analysis.ensemble_unavailable:
        lines.append(analysis.ensemble_unavailable + ".")
    else:
        lines.append("No backend finished, so there is no ensemble.")
    rec = analysis.recommendation
    if rec and rec.get("variant") in analysis.variants:
        v = analysis.variants[rec["variant"]]
        better = (v.versus_best_member or {}).get("better") or {}
        lines.append(f"Recommended variant: {rec['variant']} ({pct(v.test.accuracy)}, NLL "
                     f"{num(v.test.nll)}, ECE {num(v.test.ece)}); against the best "
                     f"backend it {_beats(better)}.")
    if analysis.accuracy_ranking:
        lines.append(analysis.accuracy_ranking + ".")
    speed = analysis.speed or {}
    if speed.get("available"):
        lines += [text + "." for text in (speed.get("ranking") or {}).values() if text]
        if speed.get("shared"):
            lines.append(speed["shared"] + ".")
    lines += serving_headline(analysis)
    bundled = (analysis.settings.get("dataset") or {}).get("bundled")
    if bundled:
        lines.append(f"Data: {bundled}.")
    if analysis.validation is not None and analysis.validation.seed_faithful:
        lines.append("Seed-faithful run: no validation split was held out, so the calibrated and "
                     "fitted variants are not available.")
    return lines


def build_view(analysis: RunAnalysis, history: Sequence[dict[str, Any]] = (),
               history_problems: Sequence[str] = (), thumbnails: Mapping[int, bytes] | None = None,
               thumbnails_unavailable: str | None = None, baseline: dict[str, Any] | None = None,
               now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything both templates show, formatted; charts are added by the renderer."""
    thumbs = {int(i): data_uri(png) for i, png in (thumbnails or {}).items()}
    verdicts = {v["subject"]: v for v in (baseline or {}).get("members", [])}
    unchecked = NO_BASELINE if (baseline or {}).get("state") == "missing" else None
    reliability, reliability_variant = reliability_panels(analysis)
    return {
        "run_id": analysis.run_id,
        "model": analysis.model_name,
        "generated_at": (now or dt.datetime.now()).isoformat(timespec="seconds"),
        "headline": headline(analysis),
        "what_ran": what_ran(analysis),
        "environments": environments(analysis),
        "results": results(analysis, verdicts, unchecked),
        "ensemble": analysis.ensemble.to_json() if analysis.ensemble else {},
        "method": analysis.method,
        "variants": ensemble_variants(analysis),
        "weights": weights(analysis),
        "recommendation": analysis.recommendation or {},
        "validation": analysis.validation.to_json() if analysis.validation else {},
        "reliability_variant": reliability_variant,
        "reliability_panels": reliability,
        "per_class": per_class(analysis),
        "pairwise": pairwise(analysis),
        "table": image_table(analysis, thumbs),
        "rescue": rescue(analysis, thumbs),
        "left_out": left_out(analysis),
        "baseline": baseline_view(baseline),
        "history": history_rows(history, analysis.run_id, list(analysis.members)),
        "history_entries": list(history),
        "history_problems": list(history_problems),
        "images_note": thumbnails_unavailable,
        "classes": analysis.classes or [],
        "charts": {},
        **_same_model_views(analysis),
    }


def _same_model_views(analysis: RunAnalysis) -> dict[str, Any]:

    return {"fidelity": fidelity_view(analysis), "step": step_view(analysis),
            "train_accuracy": train_accuracy_view(analysis), "speed": speed_view(analysis),
            "serving": serving_view(analysis)}
