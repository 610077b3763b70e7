"""``harness.scoring.analysis`` on synthetic run folders: members, variants, left-out backends, the table."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.run_end import reanalyse as reanalyse_model
from harness.scoring import ensemble, metrics, variants
from harness.scoring.analysis import analyse as analyse_model
from tests.run_fixtures import BACKENDS, RunSpec, load_run, write_run


def analyse(*args, **kwargs) -> dict:
    """The analysis as ``ensemble.json`` holds it: what these tests specify."""
    return analyse_model(*args, **kwargs).to_json()


def reanalyse(*args, **kwargs) -> dict:
    return reanalyse_model(*args, **kwargs).to_json()


def run(tmp_path: Path, **changes) -> dict:
    return reanalyse(write_run(tmp_path, RunSpec(**changes)))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> dict:
    return run(tmp_path_factory.mktemp("healthy"))


def test_every_member_is_described_with_its_metrics(healthy: dict) -> None:
    assert list(healthy["members"]) == list(BACKENDS)
    for row in healthy["members"].values():
        assert row["state"] == "ok" and row["reason"] == ""
        assert set(row["test"]) == {"accuracy", "nll", "ece", "brier"}
        assert len(row["per_class"]) == 10
        assert np.asarray(row["confusion"]).sum() == healthy["n_test"]
        assert row["temperature"] > 0 and set(row["test_calibrated"]) == set(row["test"])
        assert row["history"] and row["history"][0]["epoch"] == 1


def test_every_variant_is_computed_with_a_validation_split(healthy: dict) -> None:
    assert list(healthy["variants"]) == list(variants.NAMES)
    assert healthy["unavailable_variants"] == {}
    for name, row in healthy["variants"].items():
        assert sum(row["weights"].values()) == pytest.approx(1.0)
        assert (row["temperature"] is not None) == name.endswith("+T")
        assert row["val"] is not None
        assert row["versus_best_member"]["all_three"] == all(row["versus_best_member"]["better"].values())


def test_a_temperature_never_changes_the_accuracy(healthy: dict) -> None:
    for rule in variants.SCALED_RULES:
        scaled = healthy["variants"][f"{rule}+T"]
        assert scaled["test"]["accuracy"] == healthy["variants"][rule]["test"]["accuracy"]
        assert scaled["test_before"] == healthy["variants"][rule]["test"]
        assert scaled["weights"] == healthy["variants"][rule]["weights"]


def test_the_checked_ensemble_is_the_chosen_variant(healthy: dict) -> None:
    assert healthy["method"] == "seed"
    chosen = healthy["ensemble"]
    assert chosen["method"] == "seed"
    assert chosen["test"] == healthy["variants"]["seed"]["test"]
    assert healthy["gain_over_best"] == pytest.approx(
        chosen["test"]["accuracy"] - healthy["best_member"]["accuracy"])
    best = max(healthy["members"].values(), key=lambda m: m["test"]["accuracy"])
    assert healthy["best_member"]["accuracy"] == best["test"]["accuracy"]


def test_the_seed_weights_are_the_training_accuracies(healthy: dict) -> None:
    accuracies = {n: m["train_accuracy"] for n, m in healthy["members"].items()}
    total = sum(accuracies.values())
    assert healthy["variants"]["seed"]["weights"] == pytest.approx(
        {n: a / total for n, a in accuracies.items()})


def test_the_analysis_is_plain_json(healthy: dict) -> None:
    assert json.loads(json.dumps(healthy, allow_nan=False)) == healthy


def test_the_per_image_table_shows_how_the_ensemble_is_made(healthy: dict) -> None:
    table = healthy["table"]
    assert table["indices"] == list(range(10)) and table["variant"] == "seed"
    shares = np.sum([table["contributions"][n] for n in table["members"]], axis=0)
    np.testing.assert_allclose(shares, table["combined"], atol=1e-6)
    np.testing.assert_allclose(table["ensemble"], table["combined"], atol=1e-6)
    for name, probs in table["members"].items():
        np.testing.assert_allclose(np.asarray(table["contributions"][name]),
                                   table["weights"][name] * np.asarray(probs), atol=1e-6)
    np.testing.assert_allclose(np.sum(table["ensemble"], axis=1), 1.0, atol=1e-6)


def test_a_scaled_checked_variant_tabulates_before_and_after_its_temperature(tmp_path: Path) -> None:
    analysis = analyse(load_run(write_run(tmp_path)), "fitted+temperature", table_images=3)
    table = analysis["table"]
    assert analysis["method"] == "fitted+T" and table["temperature"] == analysis["variants"]["fitted+T"]["temperature"]
    assert len(table["indices"]) == 3
    assert not np.allclose(table["ensemble"], table["combined"])
    assert np.asarray(table["ensemble"]).argmax(axis=1).tolist() == np.asarray(table["combined"]).argmax(axis=1).tolist()


def test_rescue_examples_name_every_members_prediction(healthy: dict) -> None:
    rescue = healthy["rescue"]
    listed = set(rescue["indices_ensemble_right_all_members_wrong"]
                 + rescue["indices_ensemble_right_majority_wrong"]
                 + rescue["indices_ensemble_wrong_majority_right"])
    assert {e["index"] for e in rescue["examples"]} == listed
    for example in rescue["examples"]:
        assert set(example["members"]) == set(BACKENDS)
        right = example["ensemble"]["class"] == example["label"]
        assert right == example["case"].startswith("ensemble_right")


def test_failed_and_skipped_backends_are_left_out_and_named(tmp_path: Path) -> None:
    analysis = run(tmp_path, failed={"jax": "Traceback...\nMemoryError"},
                   skipped={"cntk": "CNTK needs Python 3.6, which this machine lacks"})
    assert analysis["members"]["jax"]["state"] == "failed"
    assert "jax/train failed" in analysis["members"]["jax"]["reason"]
    assert analysis["members"]["cntk"]["state"] == "skipped"
    assert "Python 3.6" in analysis["left_out"]["cntk"]
    assert set(analysis["left_out"]) == {"jax", "cntk"}
    assert set(analysis["ensemble"]["members"]) == {"tensorflow", "torch", "theano"}
    assert "test" not in analysis["members"]["jax"]
    assert analysis["members"]["jax"]["history"], "a finished train is still shown"


def test_no_finished_backend_gives_no_ensemble(tmp_path: Path) -> None:
    analysis = run(tmp_path, backends=("tensorflow", "jax"), failed={"tensorflow": "boom"},
                   skipped={"jax": "not installed"})
    assert analysis["ensemble"] is None and analysis["variants"] == {}
    assert set(analysis["left_out"]) == {"tensorflow", "jax"}


def test_a_one_member_ensemble_is_that_member(tmp_path: Path) -> None:
    analysis = run(tmp_path, backends=("torch",))
    member = analysis["members"]["torch"]["test"]
    for name in ("seed", "uniform", "val-accuracy", "fitted"):
        assert analysis["variants"][name]["test"] == pytest.approx(member)
    assert analysis["variants"]["seed+T"]["temperature"] == pytest.approx(
        analysis["members"]["torch"]["temperature"])
    assert analysis["pairwise"] == []


def test_a_seed_faithful_run_has_only_the_unfitted_variants(tmp_path: Path) -> None:
    analysis = run(tmp_path, n_val=0)
    assert list(analysis["variants"]) == ["seed", "uniform", "majority"]
    assert analysis["validation"] == {"available": False, "seed_faithful": True,
                                      "reason": variants.NO_VALIDATION}
    assert set(analysis["unavailable_variants"]) == variants.NEEDS_VALIDATION
    assert all("seed-faithful" in r for r in analysis["unavailable_variants"].values())
    assert analysis["recommendation"]["variant"] == "seed"
    assert "seed-faithful" in analysis["recommendation"]["why"]
    assert "temperature" not in analysis["members"]["torch"]


def test_a_fitted_method_in_a_seed_faithful_run_says_why_there_is_no_ensemble(tmp_path: Path) -> None:
    analysis = analyse(load_run(write_run(tmp_path, RunSpec(n_val=0))), "fitted")
    assert analysis["ensemble"] is None
    assert "needs a validation split" in analysis["ensemble_unavailable"]
    assert analysis["variants"]["seed"]["test"]["accuracy"] > 0


def test_an_unknown_method_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose from seed, uniform"):
        analyse(load_run(write_run(tmp_path)), "best")


def test_flop_counts_are_kept_but_a_jobs_own_utilisation_is_not(tmp_path: Path) -> None:
    """A training or predict job may share the machine, and its half-second matmul was no ceiling:
    MFU comes only from the speed phase (``harness.scoring.speed``)."""
    analysis = run(tmp_path, extra_train={"torch": {"flops": {"train": 9e7}}, "jax": {"flops": None}})
    tensorflow = analysis["members"]["tensorflow"]["flops"]
    assert tensorflow == {"train_flops_per_image": 118e6, "forward_flops_per_image": 40e6}
    assert analysis["members"]["torch"]["flops"]["train_flops_per_image"] == 9e7
    assert "train_flops_per_image" not in analysis["members"]["jax"]["flops"], "an older result without FLOPs"


def test_the_chosen_ensemble_matches_combining_the_members_directly(tmp_path: Path) -> None:
    results = load_run(write_run(tmp_path))
    analysis = analyse(results, "uniform")
    probs = [m.probs["test"] for m in results.usable.values()]
    direct = ensemble.weighted_soft_vote(probs, np.ones(len(probs)))
    assert analysis["ensemble"]["test"] == pytest.approx(metrics.summary(direct, results.labels["test"]))
