"""Post-hoc calibration fitted on the validation split: temperatures and ensemble weights.

A backend's softmax can be over- or under-confident, and the seed's ensemble
weights (training accuracy) are a guess. Both can instead be fitted to
minimise negative log-likelihood on held-out validation data. Every fitting
function here takes validation probabilities and validation labels and nothing
else, so test data cannot leak into a fit by construction; apply the fitted
values to test predictions afterwards.

Pure numpy (no scipy): each fit is a small convex problem solved by a
deterministic method with a stated tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.scoring.metrics import DEFAULT_EPS, as_labels, as_member_stack, as_probs

TEMPERATURE_BOUNDS = (0.05, 20.0)
"""Fitted temperatures are searched in this closed interval (and clamped to it)."""

_NEWTON_STEPS = 100
"""Most safeguarded Newton steps ``fit_temperature`` takes; it needs about 5-10 in practice."""

_RESOLUTION = 4 * np.finfo(np.float64).eps
"""``fit_temperature`` stops when a step moves ``log(1/T)`` by less than this (relative)."""

_LINE_SEARCH_RESOLUTION = 1e-12
"""``fit_weights``' line search stops when a step moves by less than this fraction of its length."""

_BARRIER_ROUNDS = 25
"""Most interior-point rounds ``fit_weights`` may take; about a dozen reach tol=1e-9 in practice."""

_NEWTON_STEPS_PER_ROUND = 60


def _log_probs(probs: np.ndarray, eps: float) -> np.ndarray:
    return np.log(np.clip(probs, eps, 1.0))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def apply_temperature(probs: Any, temperature: float, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Rescale predictions to ``softmax(log(p) / T)``: T > 1 softens them, T < 1 sharpens them.

    ``log(p)`` equals the network's logits up to a per-row constant, which the
    softmax ignores, so this is temperature scaling applied to saved
    probabilities. The argmax (and so accuracy) never changes.
    """
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number; got {temperature}")
    p = as_probs(probs)
    return _softmax(_log_probs(p, eps) / temperature)


def fit_temperature(val_probs: Any, val_labels: Any, eps: float = DEFAULT_EPS) -> float:
    """The temperature in ``TEMPERATURE_BOUNDS`` minimising validation NLL of ``apply_temperature``.

    With ``z = log p`` the NLL is ``mean(logsumexp(b * z) - b * z_true)`` for
    ``b = 1 / T``, which is convex in ``b``: its derivative ``g(b) =
    E_softmax(b z)[z] - z_true`` (averaged over images) is non-decreasing, and
    ``g'(b)`` is the mean variance of ``z`` under that softmax. We find the
    root of ``g`` by safeguarded Newton steps inside a bracket over ``log b``
    that shrinks on the sign of ``g`` (a step leaving the bracket is replaced
    by bisection), so it converges in a handful of steps to float64 resolution
    and is deterministic. If the optimum lies outside the bounds (e.g. a
    member that is always right wants T -> 0), the nearest bound is returned.
    A flat NLL (all-uniform predictions) returns T = 1.
    """
    p = as_probs(val_probs, "val_probs")
    y = as_labels(val_labels, p.shape[0], p.shape[1], "val_labels")
    z = _log_probs(p, eps)
    z_true = z[np.arange(z.shape[0]), y]

    def slope_and_curvature(log_b: float) -> tuple[float, float]:
        weights = _softmax(np.exp(log_b) * z)
        mean_z = np.sum(weights * z, axis=1)
        variance = np.sum(weights * (z - mean_z[:, None]) ** 2, axis=1)
        return float(np.mean(mean_z - z_true)), float(np.mean(variance))

    if np.allclose(z, z[:, :1]):
        return 1.0
    lo, hi = -np.log(TEMPERATURE_BOUNDS[1]), -np.log(TEMPERATURE_BOUNDS[0])
    if slope_and_curvature(lo)[0] >= 0:
        return TEMPERATURE_BOUNDS[1]
    if slope_and_curvature(hi)[0] <= 0:
        return TEMPERATURE_BOUNDS[0]
    log_b = min(max(0.0, lo), hi)
    for _ in range(_NEWTON_STEPS):
        slope, curvature = slope_and_curvature(log_b)
        if slope == 0:
            break
        if slope > 0:
            hi = log_b
        else:
            lo = log_b
        target = np.exp(log_b) - slope / curvature if curvature > 0 else 0.0
        following = np.log(target) if target > 0 else -np.inf
        if abs(following - log_b) <= _RESOLUTION * max(1.0, abs(log_b)):
            break  # Newton's step has shrunk to rounding: converged
        if not lo < following < hi:
            following = 0.5 * (lo + hi)
        log_b = following
    return float(np.exp(-log_b))


def fit_member_temperatures(
    member_val_probs: Mapping[str, Any], val_labels: Any, eps: float = DEFAULT_EPS
) -> dict[str, float]:
    """Fit one temperature per member on the shared validation split: ``{name: T}``."""
    return {name: fit_temperature(p, val_labels, eps) for name, p in member_val_probs.items()}


def fit_weights(
    member_val_probs: Any, val_labels: Any, tol: float = 1e-9, eps: float = DEFAULT_EPS
) -> np.ndarray:
    """Simplex weights ``[m]`` minimising validation NLL of the weighted soft vote.

    The NLL of ``sum_i w_i p_i`` depends only on each member's probability for
    the true class, ``q_i`` (clipped to ``eps`` like ``metrics.nll``), and is
    convex in ``w``. Backends trained on the same network make nearly collinear
    ``q``, where first-order updates crawl, so we use a small interior-point
    method: Newton steps on the simplex for NLL - mu * sum(log w), with mu cut
    tenfold per round, starting from uniform weights. It is deterministic and
    stops on a certificate rather than an iteration count: with
    ``g_i = mean(q_i / (w . q))``, the NLL is at most ``log(max_i g_i)`` nats
    above its minimum, and we return once that is ``<= tol``. A member that
    adds nothing ends with a weight near 0 (never exactly 0). Identical
    members share their weight equally.
    """
    stack = as_member_stack(member_val_probs, "member_val_probs")
    m, n, k = stack.shape
    y = as_labels(val_labels, n, k, "val_labels")
    if tol <= 0:
        raise ValueError(f"tol must be positive; got {tol}")
    q = np.clip(stack[:, np.arange(n), y], eps, 1.0)
    weights = np.full(m, 1.0 / m)
    barrier = 1.0 / m
    for _ in range(_BARRIER_ROUNDS):
        if _nll_gap_bound(q, weights) <= tol:
            return weights
        weights = _centre(q, weights, barrier)
        barrier *= 0.1
    raise RuntimeError(
        f"fit_weights did not reach tol={tol}; gap bound {_nll_gap_bound(q, weights)}"
    )


def _nll_gap_bound(q: np.ndarray, weights: np.ndarray) -> float:
    """Upper bound on NLL(weights) - min NLL: ``log(max_i mean(q_i / (w . q)))`` (Jensen)."""
    return float(np.log(np.max(np.mean(q / (weights @ q), axis=1))))


def _centre(q: np.ndarray, weights: np.ndarray, barrier: float) -> np.ndarray:
    """Minimise ``-mean(log(w . q)) - barrier * sum(log w)`` over the simplex by damped Newton."""
    m, n = q.shape
    kkt = np.zeros((m + 1, m + 1))
    kkt[:m, m] = kkt[m, :m] = 1.0
    w = weights
    for _ in range(_NEWTON_STEPS_PER_ROUND):
        ratio = q / (w @ q)
        gradient = -ratio.mean(axis=1) - barrier / w
        # Only the gradient's part along the simplex matters; removing its
        # ~constant bulk keeps the step's rounding error relative to its size.
        gradient -= gradient.mean()
        kkt[:m, :m] = ratio @ ratio.T / n + np.diag(barrier / w**2)
        step = np.linalg.solve(kkt, np.append(-gradient, 0.0))[:m]
        step -= step.mean()
        if not -gradient @ step > (1e-3 * barrier) ** 2:  # centred well enough for this round
            break
        moved = w + _step_size(q, w, step, barrier) * step
        moved /= moved.sum()
        if np.array_equal(moved, w):
            break
        w = moved
    return w


def _step_size(q: np.ndarray, w: np.ndarray, step: np.ndarray, barrier: float) -> float:
    """The full Newton step (capped inside the simplex) or, if it overshoots, the 1-D minimum.

    The minimum is the root of the directional derivative, which increases
    along the step (the objective is convex); we find it by safeguarded Newton
    steps inside a bracket kept on the derivative's sign (bisecting when a
    step would leave it), until a step moves less than
    ``_LINE_SEARCH_RESOLUTION`` of the step's length. Working on the
    derivative, unlike comparing objective values, stays accurate where the
    smallest barriers operate.
    """
    step_q, w_q = step @ q, w @ q

    def slope_and_curvature(size: float) -> tuple[float, float]:
        ratio_q = step_q / (w_q + size * step_q)
        ratio_w = step / (w + size * step)
        return (float(-np.mean(ratio_q) - barrier * np.sum(ratio_w)),
                float(np.mean(ratio_q**2) + barrier * np.sum(ratio_w**2)))

    shrinking = step < 0
    size = 1.0
    if shrinking.any():
        size = min(1.0, 0.99 * float(np.min(-w[shrinking] / step[shrinking])))
    if slope_and_curvature(size)[0] <= 0:
        return size
    low, high, at = 0.0, size, 0.0
    for _ in range(60):
        slope, curvature = slope_and_curvature(at)
        if slope > 0:
            high = at
        else:
            low = at
        following = at - slope / curvature
        if abs(following - at) <= _LINE_SEARCH_RESOLUTION * size:
            return following  # Newton's step has shrunk below what the outer steps notice
        if not low < following < high:
            following = 0.5 * (low + high)
        at = following
    return low
