"""The fidelity matrix: the same weights through every backend's model, compared.

Pure numpy on made-up outputs: what counts as the same function, and which
backend a disagreement names.
"""
from __future__ import annotations

import numpy as np
import pytest

from harness.scoring import fidelity


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


LOGITS = np.random.RandomState(0).normal(size=(3, 300, 10)) * 3
"""One set of logits per weights source (three trained members)."""
SOURCES = ("tensorflow", "jax", "torch")


def runs(runners, broken=(), rounding=1e-7):
    """Each runner's outputs for every source's weights; a broken runner computes another function."""
    rng = np.random.RandomState(1)
    outputs = {}
    for runner in runners:
        outputs[runner] = {}
        for i, source in enumerate(SOURCES):
            logits = LOGITS[i] + rng.normal(scale=rounding, size=LOGITS[i].shape)
            if runner in broken:
                logits = logits[:, ::-1]  # e.g. a transposed kernel: another function of the same input
            outputs[runner][source] = softmax(logits)
    return outputs


def test_float32_rounding_passes_and_every_pair_has_a_cell():
    result = fidelity.matrix(runs(["tensorflow", "jax", "torch", "theano"]))
    assert result["passed"] and result["named"] == {}
    cells = result["cells"]
    assert set(cells["jax"]) == {"tensorflow", "torch", "theano"}
    cell = cells["jax"]["torch"]
    assert cell is cells["torch"]["jax"]
    assert 0 < cell["max_abs_dp"] < 1e-5 and cell["agreement"] == 1.0
    assert cell["compared"] == sorted(SOURCES) and cell["passed"]


def test_a_backend_with_another_forward_pass_is_named_with_its_numbers():
    result = fidelity.matrix(runs(["tensorflow", "jax", "torch", "cntk"], broken={"cntk"}))
    assert not result["passed"]
    assert list(result["named"]) == ["cntk"]
    line = result["named"]["cntk"]
    assert "differs from 3 of 3 other backend(s)" in line
    worst = max(result["cells"]["cntk"][b]["max_abs_dp"] for b in ("tensorflow", "jax", "torch"))
    assert f"max |dp| {worst:.3g}" in line and "argmax agreement" in line
    assert result["cells"]["jax"]["torch"]["passed"]
    assert not result["cells"]["cntk"]["jax"]["passed"]


def test_with_two_backends_a_disagreement_names_both():
    result = fidelity.matrix(runs(["tensorflow", "torch"], broken={"torch"}))
    assert sorted(result["named"]) == ["tensorflow", "torch"]


@pytest.mark.parametrize("shift, passed", [(5e-5, True), (2e-4, False)])
def test_the_probability_tolerance_is_1e_4(shift, passed):
    base = softmax(LOGITS[0])
    moved = base.copy()
    moved[:, 0] += shift
    outputs = {"a": {"a": base}, "b": {"a": moved}}
    assert fidelity.matrix(outputs)["cells"]["a"]["b"]["passed"] is passed


def test_argmax_agreement_below_999_in_1000_fails_even_with_small_differences():
    base = np.full((1000, 2), 0.5, dtype=np.float32)
    base[:, 0] += 1e-6
    other = base.copy()
    other[:2] = other[:2, ::-1]  # two near-ties flip: 99.8% agreement, |dp| 2e-6
    worst, agreement = fidelity.compare_pair(base, other)
    assert worst < 1e-5 and agreement == pytest.approx(0.998)
    assert not fidelity.matrix({"a": {"a": base}, "b": {"a": other}})["passed"]


def test_nan_outputs_never_pass():
    base = softmax(LOGITS[0])
    broken = base.copy()
    broken[0, 0] = np.nan
    assert fidelity.compare_pair(base, broken)[0] == float("inf")


def test_the_section_needs_two_backends_and_keeps_the_reasons_for_missing_ones():
    one = fidelity.summarise(runs(["jax"]), 300, {"cntk": "cntk/fidelity failed: boom"})
    assert one["available"] is False and "1 backend(s)" in one["reason"]
    assert one["problems"] == {"cntk": "cntk/fidelity failed: boom"}
    two = fidelity.summarise(runs(["jax", "torch"]), 300, {})
    assert two["available"] and two["passed"] and two["images"] == 300


def step_run(names, broken=(), reference="jax"):
    """Each backend's one-step record and gradients: float32 rounding apart, unless broken."""
    rng = np.random.RandomState(2)
    true = [rng.normal(scale=1e-2, size=(3, 3, 3, 8)), rng.normal(scale=1e-3, size=(8,))]
    steps, grads = {}, {}
    for name in names:
        noise = [g * (1 + rng.normal(scale=1e-6, size=g.shape)) for g in true]
        if name in broken:
            noise[0] = noise[0].swapaxes(0, 1)
        steps[name] = {"reference_weights": reference, "images": 32, "loss_keras": 2.0 + 1e-7 * len(name),
                       "loss_numpy": 2.0}
        grads[name] = [g.astype(np.float32) for g in noise]
    return steps, grads


def test_one_step_from_the_same_weights_agrees_to_rounding():
    result = fidelity.step_matrix(*step_run(["tensorflow", "jax", "torch"]))
    assert result["available"] and result["passed"] and result["reference_weights"] == "jax"
    assert 0 < result["largest"]["grad_rel"] < 1e-4 and result["largest"]["loss_rel"] < 1e-6
    assert set(result["cells"]["jax"]) == {"tensorflow", "torch"}


def test_a_backend_whose_gradients_differ_is_named_with_the_weight_array():
    result = fidelity.step_matrix(*step_run(["tensorflow", "jax", "torch"], broken={"torch"}))
    assert list(result["named"]) == ["torch"]
    assert "gradients by" in result["named"]["torch"] and "weight array 0" in result["named"]["torch"]
    assert result["cells"]["jax"]["tensorflow"]["passed"]


def ill_conditioned_run(names, off=(), scale=1e-2, sensitivity=1e-3):
    """One array whose gradient float32 rounding moves by ``sensitivity`` (as batch norm's backward can)."""
    steps, grads = step_run(names)
    rng = np.random.RandomState(5)
    for name in names:
        if name in off:
            grads[name][1] = grads[name][1] + (scale * np.abs(grads[name][1]).max()
                                               * rng.uniform(-1, 1, size=grads[name][1].shape)).astype(np.float32)
        steps[name]["sensitivity"] = [1e-7, sensitivity]
    return steps, grads


def test_an_array_that_rounding_itself_moves_gets_a_tolerance_from_its_measured_sensitivity():
    """mobilenet-small's case: TensorFlow 1.9e-2 off in an array a one-ulp nudge moves by 1.6e-3."""
    result = fidelity.step_matrix(*ill_conditioned_run(["tensorflow", "jax", "torch"], off={"tensorflow"}))
    assert result["passed"], result["named"]
    cell = result["cells"]["jax"]["tensorflow"]
    assert cell["worst_array"] == 1 and cell["grad_tolerance"] == pytest.approx(0.1)
    assert 5e-3 < cell["grad_rel"] < 0.1
    assert result["sensitivity"] == {"jax": 1e-3, "tensorflow": 1e-3, "torch": 1e-3}
    # the same difference without the measured sensitivity (an older run) is beyond 1e-3
    steps, grads = ill_conditioned_run(["tensorflow", "jax", "torch"], off={"tensorflow"})
    for step in steps.values():
        del step["sensitivity"]
    assert list(fidelity.step_matrix(steps, grads)["named"]) == ["tensorflow"]


def test_a_wrong_backward_pass_fails_even_in_a_sensitive_array():
    steps, grads = ill_conditioned_run(["tensorflow", "jax", "torch"], off={"torch"}, scale=1.0)
    result = fidelity.step_matrix(steps, grads)
    assert list(result["named"]) == ["torch"] and "weight array 1" in result["named"]["torch"]
    assert "tolerance 0.1" in result["named"]["torch"]


def test_the_largest_sensitivity_any_backend_measured_sets_the_tolerance_up_to_the_cap():
    """Whether a ReLU within rounding of zero flips depends on each backend's rounding, not on the model alone."""
    steps, _ = ill_conditioned_run(["tensorflow", "jax", "torch"])
    steps["jax"]["sensitivity"] = [1e-7, 5e-4]
    steps["torch"]["sensitivity"] = [1e-7, 1.0]  # erratic: widens the tolerance only up to the cap
    assert fidelity.array_tolerances(list(steps.values()), 2) == [pytest.approx(1e-3), pytest.approx(0.1)]
    steps["torch"]["sensitivity"] = [2e-5, 1e-6]
    assert fidelity.array_tolerances(list(steps.values()), 2) == [pytest.approx(2e-3), pytest.approx(0.1)]
    assert fidelity.array_tolerances([{}, {"sensitivity": [1.0]}], 3) == [1e-3] * 3  # wrong length: ignored


def test_no_array_goes_unchecked_however_sensitive():
    """A ReLU flipped by the nudge moves a gradient by a whole term: the tolerance stops at 0.1."""
    steps, grads = ill_conditioned_run(["tensorflow", "jax", "torch"], off={"torch"}, scale=1.0, sensitivity=3e-2)
    assert fidelity.array_tolerances(list(steps.values()), 2)[1] == fidelity.STEP_GRAD_CAP == 0.1
    result = fidelity.step_matrix(steps, grads)
    assert list(result["named"]) == ["torch"] and result["tolerance"]["grad_cap"] == 0.1


def test_the_ulp_nudge_moves_every_value_exactly_one_float32_step_the_same_way_everywhere():
    from harness.workload.fidelity import relative_change, ulp_nudge

    arrays = [np.linspace(-1, 1, 101, dtype=np.float32), np.zeros((2, 3), np.float32)]
    once, again = ulp_nudge(arrays, "fp"), ulp_nudge(arrays, "fp")
    assert all(np.array_equal(a, b) for a, b in zip(once, again, strict=True))
    for before, after in zip(arrays, once, strict=True):
        assert after.dtype == np.float32 and after.shape == before.shape
        up, down = np.nextafter(before, np.float32(np.inf)), np.nextafter(before, np.float32(-np.inf))
        assert np.all((after == up) | (after == down))
    assert 0 < np.mean(once[0] > arrays[0]) < 1  # both directions drawn
    assert not np.array_equal(ulp_nudge(arrays, "other")[0], once[0])
    assert relative_change(np.array([2.0, -4.0]), np.array([2.0, -3.0])) == pytest.approx(0.25)
    assert relative_change(np.zeros(3), np.zeros(3)) == 0.0


def test_a_backend_that_started_from_other_weights_is_left_out_not_compared():
    steps, grads = step_run(["tensorflow", "jax", "torch"])
    steps["torch"]["reference_weights"] = "cntk"
    result = fidelity.step_matrix(steps, grads)
    assert result["left_out"] == {"torch": "it started from cntk's weights, not jax's"}
    assert set(result["cells"]) == {"jax", "tensorflow"}


def test_weights_are_saved_as_cross_correlation_kernels_and_theanos_are_flipped_both_ways():
    """Keras 2.3.1's Theano convolves (flipped kernels); weights.npz holds what the others compute."""
    from harness.workload import model

    kernel, bias, dense = np.arange(2 * 3 * 1 * 1.0).reshape(2, 3, 1, 1), np.ones(1), np.eye(2)
    assert all(a is b or np.array_equal(a, b) for a, b in zip(model.portable("torch", [kernel, bias, dense]),
                                                              [kernel, bias, dense], strict=True))
    flipped = model.portable("theano", [kernel, bias, dense])
    assert np.array_equal(flipped[0][:, :, 0, 0], kernel[::-1, ::-1, 0, 0])
    assert np.array_equal(flipped[2], dense)
    assert np.array_equal(model.portable("theano", flipped)[0], kernel)
