"""Adam's step compiled: torch's single-tensor Adam element by element, in its float32 rounding.

:class:`~sb3_ac_plus.one_step_ac.fast.flat_optimizer.FlatOptimizer` hands the views of the policy Adam's flat twin
(parameters, gradients, moments) to :func:`~sb3_ac_plus.one_step_ac.fast.adam_rows.adam_rows`, which steps them here.
"""

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)
def _adam_element(
    value: np.float32,
    grad: np.float32,
    exp_avg: np.float32,
    exp_avg_sq: np.float32,
    lerp_weight: np.float32,
    small_weight: bool,
    beta2: np.float32,
    one_minus_beta2: np.float32,
    correction: np.float32,
    eps: np.float32,
    neg_step: np.float32,
    decay: np.float32,
    has_decay: bool,
) -> tuple[np.float32, np.float32, np.float32]:  # pragma: no cover
    """One element's new ``exp_avg``, ``exp_avg_sq`` and parameter, every operand float32 (see :func:`adam_write`)."""
    g = grad + decay * value if has_decay else grad
    diff = g - exp_avg
    # torch's lerp: start + (end - start) * w for weights below one half, else end - (end - start) * (1 - w)
    m = exp_avg + diff * lerp_weight if small_weight else g - diff * lerp_weight
    v = exp_avg_sq * beta2 + (g * one_minus_beta2) * g
    denom = np.float32(math.sqrt(np.float64(v))) / correction + eps
    return m, v, value + (m * neg_step) / denom


@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)
def step_scalars(hyper: np.ndarray, step: float) -> tuple:  # pragma: no cover (compiled)
    """
    Adam's per-step scalars, computed in float64 as torch's single-tensor Adam computes them in Python floats
    (``step_size = lr / (1 - beta1 ** step)``, ``sqrt(1 - beta2 ** step)``), then rounded to float32, as torch rounds
    them against a float32 tensor (a test checks them against that formula, bit for bit), in the order
    :func:`_adam_element` takes them.

    :param hyper: ``[lr, beta1, beta2, eps, weight_decay, ...]``, float64
    :param step: the step's count (1 at the first step)
    :return: the step's scalars of :func:`adam_write`
    """
    lr, beta1, beta2, eps, weight_decay = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]
    step_size = lr / (1.0 - beta1**step)
    correction = math.sqrt(1.0 - beta2**step)
    weight = 1.0 - beta1
    small_weight = weight < 0.5
    lerp_weight = np.float32(weight) if small_weight else np.float32(1.0 - weight)
    return (
        lerp_weight,
        small_weight,
        np.float32(beta2),
        np.float32(1.0 - beta2),
        np.float32(correction),
        np.float32(eps),
        np.float32(-step_size),
        np.float32(weight_decay),
        weight_decay != 0.0,
    )


# No fastmath in these three: each element rounds as torch's single-tensor Adam rounds it. Neither loop branches on the
# data, so the compiler vectorises them as they are. fastmath=False is explicit because numba gives a kernel that does not
# set it its caller's flags: called from a kernel with FAST_SUMS (optimizer_kernels), the step would be compiled, and
# cached, with reassociation, and round differently from one install to the next depending on which call came first.
@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)
def adam_write(
    values: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, scalars: tuple
) -> None:  # pragma: no cover
    """
    Adam's step on float32 vectors, in place, in the order and float32 rounding of torch's single-tensor
    implementation (``exp_avg.lerp_(grad, 1 - beta1)``; ``exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 -
    beta2)``; ``param.addcdiv_(exp_avg, exp_avg_sq.sqrt() / bias_correction2_sqrt + eps, value=-step_size)``).

    :param scalars: the step's scalars (:func:`step_scalars`)
    """
    for i in range(values.shape[0]):
        m, v, new = _adam_element(values[i], grad[i], exp_avg[i], exp_avg_sq[i], *scalars)
        exp_avg[i] = m
        exp_avg_sq[i] = v
        values[i] = new


@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)
def adam_is_finite(
    values: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, scalars: tuple
) -> bool:  # pragma: no cover
    """:return: whether :func:`adam_write` with these arguments would leave every parameter finite (writes nothing)"""
    bad = 0
    for i in range(values.shape[0]):
        new = _adam_element(values[i], grad[i], exp_avg[i], exp_avg_sq[i], *scalars)[2]
        bad |= not (new - new == 0.0)  # inf - inf and NaN - NaN are NaN
    return bad == 0
