"""Turn a gathered run into the numbers people want: members, ensemble variants, rescues.

Pure: takes ``RunResults`` (numpy arrays and parsed result files) and returns
a ``harness.scoring.record.RunAnalysis``, written to ``<run>/ensemble.json`` and
read by the baseline checks, the run history and the report (which never open
the job files themselves). Its parts:

* ``members[name]``: state, reason, training figures and learning curve,
  timings, environment; for a usable member its test (and validation)
  metrics, per-class accuracy, confusion matrix, reliability bins, and its
  own temperature fitted on the validation split with the test metrics after it;
* ``variants[name]`` (see ``harness.scoring.variants``): weights, temperature, test
  and validation metrics, reliability bins (before and after a temperature),
  gain over the best member; ``unavailable_variants[name]``: why not;
* ``ensemble``: the variant chosen by ``method`` (what the baseline checks),
  with its per-class accuracy and confusion matrix;
* ``recommendation``: the variant the validation split favours, and why;
* ``rescue``: the seed's observation counted, with example images;
* ``table``: the first test images in the seed's per-image format;
* ``fidelity`` (see ``harness.fidelity``): the backend x backend matrix of the
  same weights run through each backend's model, the backends it names, and
  (``fidelity.step``) one training step from the same weights compared.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from harness.jobs import JobResult
from harness.scoring import calibration, ensemble, fidelity, intervals, metrics, serving, variants
from harness.scoring import speed as speed_figures
from harness.scoring.gather import Member, RunResults, gather
from harness.scoring.record import (
    BestMember,
    EnsembleFigures,
    MemberFigures,
    Metrics,
    RunAnalysis,
    Validation,
    VariantFigures,
)

TABLE_IMAGES = 10
"""Test images in the per-image table by default (the seed showed 10)."""
MAX_TABLE_IMAGES = 200
EXAMPLES_PER_CASE = 4
"""Example images kept for each rescue case."""
FLOP_FIGURES = {
    "train_flops_per_image": ("train", "train"),
    "forward_flops_per_image": ("predict", "forward"),
}
"""Figures from a job's ``flops`` object (when it wrote one): name -> (phase, key). Utilisation
is not among them: it is computed from the speed phase, measured alone against the machine's
ceiling (``harness.scoring.speed``)."""


def member_outputs(member: Member) -> ensemble.MemberOutputs:
    return ensemble.MemberOutputs(
        test_probs=member.probs["test"],
        train_accuracy=member.train_accuracy,
        val_probs=member.probs.get("val"),
        val_labels=member.labels.get("val"),
    )


CONFUSION_MAX_CLASSES = 100
"""Above this many classes no confusion matrix is kept: it grows with the square of the classes (10,000
classes: 10^8 cells per member, minutes and gigabytes), and no chart of it could be read."""


def _confusion(probs: np.ndarray, labels: np.ndarray) -> list[list[int]] | None:
    if probs.shape[1] > CONFUSION_MAX_CLASSES:
        return None
    return metrics.confusion_matrix(probs, labels).tolist()


def _plain(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def _history(train: dict) -> list[dict[str, Any]]:
    keys = ("epoch", "accuracy", "loss", "val_accuracy", "val_loss", "seconds", "images_per_s")
    return [{k: row.get(k) for k in keys if row.get(k) is not None}
            for row in train.get("history", []) if isinstance(row, dict)]


def _flop_figures(train: dict, predict: dict) -> dict[str, float]:
    """Model FLOPs and utilisation, when the jobs measured them (older results lack them)."""
    found = {}
    for name, (phase, key) in FLOP_FIGURES.items():
        cost = (train if phase == "train" else predict).get("flops")
        value = cost.get(key) if isinstance(cost, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found[name] = float(value)
    return found


def accuracy_ranking(members: dict[str, MemberFigures], n_test: int) -> str:
    """Who is the most accurate on the ``n_test`` test images, or who is tied: Wilson 95% intervals.

    The interval is that of the accuracy on images like these (the test set a
    sample of them); a second training run with another seed adds its own spread.
    """
    figures = {}
    for name, row in members.items():
        if row.test is not None and n_test:
            low, high = intervals.wilson(round(row.test.accuracy * n_test), n_test)
            figures[name] = (row.test.accuracy, low, high)
    return intervals.ranking(figures, higher_is_better=True, noun="most accurate", fmt="{:.1%}".format)


def scores(probs: np.ndarray, labels: np.ndarray) -> Metrics:
    return Metrics(**metrics.summary(probs, labels))


def describe_member(member: Member, labels: dict[str, np.ndarray]) -> MemberFigures:
    """One member's figures; test metrics only when its predictions are usable."""
    train, predict = member.train or {}, member.predict or {}
    train_timing, predict_timing = train.get("timing", {}), predict.get("timing", {})
    row = MemberFigures(
        state=member.state,
        reason=member.reason,
        train_accuracy=train.get("final", {}).get("train_accuracy"),
        train_loss=train.get("final", {}).get("train_loss"),
        train_accuracy_inference=train.get("final", {}).get("train_accuracy_inference"),
        train_loss_inference=train.get("final", {}).get("train_loss_inference"),
        train_inference_sample=train.get("final", {}).get("train_inference_sample"),
        seed_weight_figure=member.train_accuracy_basis if member.train else None,
        train_images_per_s=train_timing.get("steady_images_per_s"),
        epoch_seconds=train_timing.get("epoch_seconds"),
        train_seconds=train_timing.get("train_seconds"),
        inference_images_per_s=predict_timing.get("images_per_s"),
        latency_p50_ms=predict_timing.get("p50_ms"),
        latency_p90_ms=predict_timing.get("p90_ms"),
        latency_p99_ms=predict_timing.get("p99_ms"),
        peak_rss_mb={"train": train.get("peak_rss_mb"), "predict": predict.get("peak_rss_mb")},
        parameters=train.get("model", {}).get("parameters"),
        environment=predict.get("environment") or train.get("environment"),
        history=_history(train),
        flops=_flop_figures(train, predict),
    )
    if member.usable:
        test_probs, test_labels = member.probs["test"], labels["test"]
        row.test = scores(test_probs, test_labels)
        row.per_class = _plain(metrics.per_class_accuracy(test_probs, test_labels))
        row.confusion = _confusion(test_probs, test_labels)
        row.reliability = metrics.reliability_bins(test_probs, test_labels).to_dict()
        val_probs, val_labels = member.probs.get("val"), labels.get("val")
        if val_probs is not None and val_labels is not None and len(val_labels):
            row.val = scores(val_probs, val_labels)
            row.temperature = calibration.fit_temperature(val_probs, val_labels)
            row.test_calibrated = scores(calibration.apply_temperature(test_probs, row.temperature),
                                         test_labels)
    return row


def describe_variant(variant: variants.Variant, labels: dict[str, np.ndarray],
                     best_accuracy: float, unscaled: VariantFigures | None = None) -> VariantFigures:
    """A variant's numbers; ``unscaled`` is its rule's row, reused as the "before T" figures."""
    test = scores(variant.test_probs, labels["test"])
    row = VariantFigures(
        weights=variant.weights,
        members=list(variant.weights),
        temperature=variant.temperature,
        test=test,
        val=scores(variant.val_probs, labels["val"]) if variant.val_probs is not None else None,
        reliability=metrics.reliability_bins(variant.test_probs, labels["test"]).to_dict(),
        gain_over_best=test.accuracy - best_accuracy,
    )
    if variant.temperature is not None:
        if unscaled is None:
            unscaled = describe_variant(dataclasses.replace(
                variant, temperature=None, test_probs=variant.unscaled_test_probs, val_probs=None),
                {"test": labels["test"]}, best_accuracy)
        row.reliability_before = unscaled.reliability
        row.test_before = unscaled.test
    return row


def versus_best(test: Metrics, best: Metrics) -> dict[str, Any]:
    """An ensemble's test metrics against the best member's: better on each, and on all three?"""
    better = {"accuracy": test.accuracy > best.accuracy, "nll": test.nll < best.nll,
              "ece": test.ece < best.ece}
    return {"better": better, "all_three": all(better.values())}


def analyse_run(store: Any, backends: list[str], statuses: dict[tuple[str, str], JobResult],
                skipped: dict[str, str] | None = None, method: str = ensemble.DEFAULT_METHOD,
                table_images: int = TABLE_IMAGES, harness: dict[str, Any] | None = None) -> RunAnalysis:
    """A run's whole analysis, built complete from its run store: the one way a live run and
    ``kbench report`` alike make ``ensemble.json``.

    ``statuses`` say how each job ended (a live run's scheduler, or the store's
    status files for a finished run); ``harness`` is the live run's own cost
    (None when re-rendering: no harness ran the jobs then).
    """
    results = gather(store, backends, statuses, skipped)
    analysis = analyse(results, method, table_images=table_images)
    analysis.settings = results.settings
    analysis.statuses = {f"{b}/{p}": s.to_json() for (b, p), s in sorted(statuses.items())}
    analysis.harness = harness
    return analysis


def analyse(results: RunResults, method: str = ensemble.DEFAULT_METHOD,
            table_images: int = TABLE_IMAGES) -> RunAnalysis:
    """Every member's metrics and every ensemble variant of the usable ones.

    ``method`` names the variant the baseline checks (``harness.scoring.variants``
    names; an unknown name raises ValueError). If the run cannot make it (a
    fitted variant in a seed-faithful run), ``ensemble`` is None and
    ``ensemble_unavailable`` says why; everything else is still filled in.
    """
    method = variants.canonical(method)
    usable = results.usable
    profile = results.settings.get("profile", {}) if isinstance(results.settings, dict) else {}
    seed_faithful = profile.get("n_val") == 0
    served = serving.summarise(results.serve, results.serve_audits,
                               {name: m.probs["test"] for name, m in usable.items() if "test" in m.probs},
                               results.serve_problems)
    out = RunAnalysis(
        run_id=results.run_id, method=method, fingerprint=results.fingerprint, classes=results.classes,
        n_test=len(results.labels.get("test", [])), n_val=len(results.labels.get("val", [])),
        data=_data_description(results),
        members={name: describe_member(m, results.labels) for name, m in results.members.items()},
        left_out=results.left_out,
        fidelity=fidelity.summarise(results.fidelity, results.fidelity_images, results.fidelity_problems,
                                    steps=results.steps, step_grads=results.step_grads),
        speed=speed_figures.summarise(results.speed, results.speed_problems,
                                      not_ranked=served.get("audit_failed") or {}),
        serving=served,
    )
    if not usable:
        out.validation = Validation(False, seed_faithful, "no backend finished")
        return out
    labels = results.labels
    outputs = {name: member_outputs(m) for name, m in usable.items()}
    with_val = variants.has_validation(outputs)
    out.validation = Validation(with_val, seed_faithful, "" if with_val else variants.NO_VALIDATION
                                if seed_faithful else (
        "a member wrote no predictions on the validation split; re-run its predict job"))
    out.accuracy_ranking = accuracy_ranking(out.members, out.n_test)
    built, out.unavailable_variants = variants.build(outputs)
    best_name = max(usable, key=lambda n: out.members[n].test.accuracy)
    best = out.members[best_name].test
    out.best_member = BestMember(best_name, best.accuracy)
    for name, variant in built.items():  # NAMES order: a rule comes before its +T variant
        out.variants[name] = describe_variant(
            variant, labels, best.accuracy, out.variants.get(variants.base_rule(name)))
    for row in out.variants.values():
        row.versus_best_member = versus_best(row.test, best)
    out.recommendation = variants.recommend(built, outputs)

    member_probs = {name: m.probs["test"] for name, m in usable.items()}
    out.pairwise = [{"a": a, "b": b, **values}
                    for (a, b), values in metrics.pairwise(member_probs).items()]
    if method not in built:
        out.ensemble_unavailable = (f"the {method} ensemble is unavailable in this run: "
                                    f"{out.unavailable_variants.get(method, 'unknown reason')}")
        return out
    chosen = built[method]
    out.ensemble = EnsembleFigures(
        **{f.name: getattr(out.variants[method], f.name) for f in dataclasses.fields(VariantFigures)},
        method=method, per_class=_plain(metrics.per_class_accuracy(chosen.test_probs, labels["test"])),
        confusion=_confusion(chosen.test_probs, labels["test"]))
    out.gain_over_best = out.ensemble.gain_over_best
    out.rescue = ensemble.rescue_analysis(member_probs, chosen.test_probs, labels["test"],
                                          max_examples=EXAMPLES_PER_CASE)
    out.rescue["examples"] = _examples(out.rescue, member_probs, chosen.test_probs, labels["test"])
    out.table = _table(chosen, member_probs, labels["test"], table_images)
    return out


def _data_description(results: RunResults) -> dict[str, Any]:
    for member in results.members.values():
        data = (member.predict or member.train or {}).get("data")
        if isinstance(data, dict) and member.usable:
            return {key: data.get(key) for key in ("cache_key", "sizes", "source", "fingerprint")}
    return {"fingerprint": results.fingerprint}


def _prediction(probs: np.ndarray) -> dict[str, Any]:
    return {"class": int(probs.argmax()), "p": float(probs.max())}


def _examples(rescue: dict, member_probs: dict[str, np.ndarray], ens: np.ndarray,
              labels: np.ndarray) -> list[dict[str, Any]]:
    """Each rescue case's example images with every member's and the ensemble's prediction."""
    examples = []
    for case in ("ensemble_right_all_members_wrong", "ensemble_right_majority_wrong",
                 "ensemble_wrong_majority_right"):
        for index in rescue[f"indices_{case}"]:
            if any(e["index"] == index for e in examples):
                continue
            examples.append({
                "index": int(index), "case": case, "label": int(labels[index]),
                "members": {name: _prediction(p[index]) for name, p in member_probs.items()},
                "ensemble": _prediction(ens[index]),
            })
    return examples


def _round(values: np.ndarray) -> list:
    return np.round(values, 7).tolist()


def _table(chosen: variants.Variant, member_probs: dict[str, np.ndarray], labels: np.ndarray,
           count: int) -> dict[str, Any]:
    """The first test images in the seed's format: p_i per member, w_i p_i, the ensemble."""
    count = max(0, min(int(count), MAX_TABLE_IMAGES, labels.shape[0]))
    rows = slice(0, count)
    soft = chosen.name != "majority"
    names = list(member_probs)
    stack = np.stack([member_probs[n][rows] for n in names]) if names else np.zeros((0, count, 0))
    table: dict[str, Any] = {
        "variant": chosen.name,
        "indices": list(range(count)),
        "labels": labels[rows].tolist(),
        "weights": chosen.weights,
        "temperature": chosen.temperature,
        "soft": soft,
        "members": {n: _round(stack[i]) for i, n in enumerate(names)},
        "ensemble": _round(chosen.test_probs[rows]),
    }
    if soft and count:
        weights = [chosen.weights[n] for n in names]
        table["contributions"] = {n: _round(part) for n, part in
                                  zip(names, ensemble.weighted_contributions(stack, weights), strict=True)}
        table["combined"] = _round(chosen.unscaled_test_probs[rows])
    return table
