"""Turn a gathered run into the numbers people want: members, ensembles, rescues.

Pure: takes ``RunResults`` (numpy arrays and parsed result files) and returns
plain JSON-ready data, written to ``<run>/ensemble.json`` and read by the
baseline checks and the report.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from harness import ensemble, metrics
from harness.gather import Member, RunResults

SCHEMA_VERSION = 1


def member_outputs(member: Member) -> ensemble.MemberOutputs:
    return ensemble.MemberOutputs(
        test_probs=member.probs["test"],
        train_accuracy=member.train_accuracy,
        val_probs=member.probs.get("val"),
        val_labels=member.labels.get("val"),
    )


def describe_member(member: Member, labels: dict[str, np.ndarray]) -> dict[str, Any]:
    train, predict = member.train or {}, member.predict or {}
    row: dict[str, Any] = {
        "state": member.state,
        "reason": member.reason,
        "train_accuracy": train.get("final", {}).get("train_accuracy"),
        "train_loss": train.get("final", {}).get("train_loss"),
        "train_images_per_s": train.get("timing", {}).get("steady_images_per_s"),
        "epoch_seconds": train.get("timing", {}).get("epoch_seconds"),
        "inference_images_per_s": predict.get("timing", {}).get("images_per_s"),
        "latency_p50_ms": predict.get("timing", {}).get("p50_ms"),
        "latency_p99_ms": predict.get("timing", {}).get("p99_ms"),
        "environment": (predict or train).get("environment"),
    }
    if member.usable:
        row["test"] = metrics.summary(member.probs["test"], labels["test"])
        if "val" in member.probs and "val" in labels:
            row["val"] = metrics.summary(member.probs["val"], labels["val"])
    return row


def available_methods(members: dict[str, Member]) -> list[str]:
    """Methods whose inputs every usable member has (val methods need a validation split)."""
    have_val = all("val" in m.probs and len(m.labels.get("val", [])) for m in members.values())
    return [m for m in ensemble.METHODS if have_val or m not in ("val-accuracy", "fitted")]


def analyse(results: RunResults, method: str = ensemble.DEFAULT_METHOD) -> dict[str, Any]:
    """Every member's metrics and the ensemble of the usable ones, by each method that applies."""
    if method not in ensemble.METHODS:
        raise ValueError(f"unknown ensemble method {method!r}; choose from {', '.join(ensemble.METHODS)}")
    usable = results.usable
    out: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "run_id": results.run_id,
        "method": method,
        "fingerprint": results.fingerprint,
        "classes": results.classes,
        "n_test": int(len(results.labels.get("test", []))),
        "members": {name: describe_member(m, results.labels) for name, m in results.members.items()},
        "left_out": results.left_out,
        "variants": {},
        "ensemble": None,
    }
    if not usable:
        return out
    labels = results.labels["test"]
    outputs = {name: member_outputs(m) for name, m in usable.items()}
    for name in available_methods(usable):
        combined = ensemble.combine(name, outputs)
        out["variants"][name] = {"weights": combined.weights, "members": list(combined.members),
                                 "test": metrics.summary(combined.probs, labels)}
    if method not in out["variants"]:
        raise ValueError(f"the {method} ensemble needs a validation split, which profile "
                         f"{results.settings.get('profile', {}).get('name')} does not hold; pick another method")
    chosen = ensemble.combine(method, outputs)
    best_name = max(usable, key=lambda n: out["members"][n]["test"]["accuracy"])
    best_accuracy = out["members"][best_name]["test"]["accuracy"]
    ens_accuracy = out["variants"][method]["test"]["accuracy"]
    out["ensemble"] = dict(out["variants"][method], method=method)
    out["best_member"] = {"name": best_name, "accuracy": best_accuracy}
    out["gain_over_best"] = ens_accuracy - best_accuracy
    member_probs = {name: m.probs["test"] for name, m in usable.items()}
    out["rescue"] = ensemble.rescue_analysis(member_probs, chosen.probs, labels)
    out["pairwise"] = [{"a": a, "b": b, **values} for (a, b), values in metrics.pairwise(member_probs).items()]
    return out
