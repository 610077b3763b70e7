"""The calibrated ensemble end to end: fitted on the validation split only, with known answers.

Runs are synthetic (``tests.run_fixtures``): members are noisy, rescaled views
of shared logits, so a member's logit scale sets how over- or under-confident
it is and a huge noise makes it useless.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness.scoring import calibration, variants
from harness.scoring.analysis import analyse as analyse_model
from harness.scoring.ensemble import MemberOutputs
from harness.workload import layout
from tests.run_fixtures import RunSpec, load_run, rewrite_output, write_run


def analyse(*args, **kwargs) -> dict:
    """The analysis as ``ensemble.json`` holds it."""
    return analyse_model(*args, **kwargs).to_json()


def fitted_values(analysis: dict) -> dict:
    """Every number fitted on validation data, and the choice made from it."""
    return {
        "member_temperatures": {n: m.get("temperature") for n, m in analysis["members"].items()},
        "weights": {n: v["weights"] for n, v in analysis["variants"].items()},
        "temperatures": {n: v["temperature"] for n, v in analysis["variants"].items()},
        "recommendation": analysis["recommendation"],
        "val": {n: v["val"] for n, v in analysis["variants"].items()},
    }


def test_changing_the_test_labels_moves_no_fitted_value(tmp_path: Path) -> None:
    spec = RunSpec(n_test=200)
    honest = analyse(load_run(write_run(tmp_path / "a", spec)), "fitted+T")
    scrambled_labels = np.random.default_rng(99).integers(0, 10, size=spec.n_test)
    scrambled = analyse(load_run(write_run(tmp_path / "b", RunSpec(n_test=200, test_labels=scrambled_labels))),
                        "fitted+T")
    assert fitted_values(scrambled) == fitted_values(honest)
    # ... while everything scored on the test set did move
    assert scrambled["variants"]["fitted+T"]["test"] != honest["variants"]["fitted+T"]["test"]


def test_changing_the_test_predictions_moves_no_fitted_value(tmp_path: Path) -> None:
    folder = write_run(tmp_path)
    before = analyse(load_run(folder), "fitted+T")
    rng = np.random.default_rng(5)
    for backend in ("tensorflow", "cntk"):
        path = folder / backend / layout.probs_name("test")
        probs = rng.dirichlet(np.ones(10), size=np.load(path).shape[0]).astype(np.float32)
        rewrite_output(folder, backend, layout.probs_name("test"), probs)
    after = analyse(load_run(folder), "fitted+T")
    assert fitted_values(after) == fitted_values(before)


def test_an_over_confident_member_gets_a_temperature_above_one(tmp_path: Path) -> None:
    analysis = analyse(load_run(write_run(tmp_path, RunSpec(
        n_val=400, pool_train=1200, scale={"tensorflow": 4.0, "jax": 0.25},
        noise={"tensorflow": 0.3, "jax": 0.3}))))
    assert analysis["members"]["tensorflow"]["temperature"] > 1.5
    assert analysis["members"]["jax"]["temperature"] < 0.7


def test_a_useless_member_gets_a_near_zero_fitted_weight(tmp_path: Path) -> None:
    analysis = analyse(load_run(write_run(tmp_path, RunSpec(
        n_val=400, pool_train=1200, noise={"theano": 40.0}, scale={"theano": 1.0}))))
    assert analysis["members"]["theano"]["test"]["accuracy"] < 0.25
    assert analysis["variants"]["fitted"]["weights"]["theano"] < 0.03
    assert analysis["variants"]["seed"]["weights"]["theano"] > 0.15  # the seed's rule cannot tell


def test_temperature_scaling_lowers_the_ensembles_validation_nll(tmp_path: Path) -> None:
    analysis = analyse(load_run(write_run(tmp_path)))
    for rule in variants.SCALED_RULES:
        assert (analysis["variants"][f"{rule}+T"]["val"]["nll"]
                <= analysis["variants"][rule]["val"]["nll"] + 1e-12)


def test_an_under_confident_ensemble_is_sharpened_and_its_ece_falls(tmp_path: Path) -> None:
    # Averaging members that disagree flattens the ensemble: the finding (T about 0.8).
    analysis = analyse(load_run(write_run(tmp_path, RunSpec(
        n_val=600, n_test=300, pool_train=1800, pool_test=600,
        scale={b: 1.0 for b in ("tensorflow", "jax", "torch", "theano", "cntk")},
        noise={b: 1.5 for b in ("tensorflow", "jax", "torch", "theano", "cntk")}))))
    seed, scaled = analysis["variants"]["seed"], analysis["variants"]["seed+T"]
    assert scaled["temperature"] < 1
    assert scaled["test"]["ece"] < seed["test"]["ece"]
    assert scaled["test"]["nll"] < seed["test"]["nll"]


def test_the_recommendation_is_explained_and_made_on_validation_data(tmp_path: Path) -> None:
    analysis = analyse(load_run(write_run(tmp_path)))
    recommendation = analysis["recommendation"]
    assert recommendation["variant"] in analysis["variants"]
    assert "validation" in recommendation["why"] and "test set played no part" in recommendation["why"]
    assert set(recommendation["scores"]) == set(variants.SIMPLICITY)
    assert recommendation["scores"][recommendation["lowest"]] == min(recommendation["scores"].values())


def test_cross_validation_scores_each_image_with_a_fit_that_did_not_see_it() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=40)
    probs = rng.dirichlet(np.ones(3), size=40)
    members = {"a": MemberOutputs(probs, 0.5, probs, labels)}
    scores = variants.cross_validated_nll(["seed+T"], members, folds=4)["seed+T"]
    held = np.arange(40) % 4 == 1
    kept = ~held
    t = calibration.fit_temperature(probs[kept], labels[kept])
    expected = -np.log(calibration.apply_temperature(probs[held], t)[np.arange(held.sum()), labels[held]])
    np.testing.assert_allclose(scores[held], expected)


def test_a_tiny_validation_split_keeps_the_seeds_rule(tmp_path: Path) -> None:
    analysis = analyse(load_run(write_run(tmp_path, RunSpec(n_val=10))))
    assert analysis["recommendation"]["variant"] == "seed"
    assert "too few" in analysis["recommendation"]["why"]


@pytest.mark.parametrize(("spelling", "name"), [
    ("seed", "seed"), ("fitted+T", "fitted+T"), ("fitted+temperature", "fitted+T"),
    (" uniform+t ", "uniform+T"), ("val-accuracy", "val-accuracy")])
def test_variant_names_have_one_standard_spelling(spelling: str, name: str) -> None:
    assert variants.canonical(spelling) == name


@pytest.mark.parametrize("bad", ["+T", "majority+T", "val-accuracy+T", "seeds", ""])
def test_unknown_variant_names_are_refused_with_the_list(bad: str) -> None:
    with pytest.raises(ValueError, match="choose from seed, uniform, val-accuracy, majority, fitted"):
        variants.canonical(bad)


@st.composite
def members_with_validation(draw) -> dict[str, MemberOutputs]:
    m, k = draw(st.integers(1, 4)), draw(st.integers(2, 6))
    n_val, n_test = draw(st.integers(2, 30)), draw(st.integers(1, 20))
    logits = st.floats(-8, 8, allow_nan=False)
    val_labels = draw(hnp.arrays(np.int64, n_val, elements=st.integers(0, k - 1)))
    members = {}
    for i in range(m):
        val = softmax(draw(hnp.arrays(np.float64, (n_val, k), elements=logits)))
        test = softmax(draw(hnp.arrays(np.float64, (n_test, k), elements=logits)))
        members[f"m{i}"] = MemberOutputs(test, draw(st.floats(0.05, 1.0)), val, val_labels)
    return members


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@settings(max_examples=40, deadline=None)
@given(members_with_validation())
def test_every_variant_is_a_probability_and_a_temperature_keeps_the_argmax(members) -> None:
    built, unavailable = variants.build(members)
    assert set(built) | set(unavailable) == set(variants.NAMES)
    # only when every member gets every validation image wrong are there no accuracy weights
    assert set(unavailable) <= {"val-accuracy"}
    assert all("gave unusable weights" in reason for reason in unavailable.values())
    for name, variant in built.items():
        assert np.all(variant.test_probs >= 0)
        np.testing.assert_allclose(variant.test_probs.sum(axis=1), 1.0, atol=1e-9)
        assert sum(variant.weights.values()) == pytest.approx(1.0)
        if variant.temperature is not None:
            base = built[variants.base_rule(name)]
            assert variant.weights == base.weights
            top_two = np.sort(base.test_probs, axis=1)[:, -2:]
            clear = top_two[:, 1] - top_two[:, 0] > 1e-9  # a tie may round either way
            np.testing.assert_array_equal(variant.test_probs.argmax(axis=1)[clear],
                                          base.test_probs.argmax(axis=1)[clear])
