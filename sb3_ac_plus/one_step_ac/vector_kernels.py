"""Compiled one-pass versions of the update's operations on NumPy parameter vectors and traces.

Each replaces a few NumPy calls (each a pass over the vector and an allocation) by one pass; the functions of
:mod:`sb3_ac_plus.one_step_ac.trace_updates` call them for NumPy arrays.
"""

import math

import numpy as np
from numba import njit

from sb3_ac_plus.one_step_ac.kernel_options import FAST_SUMS


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def decay_and_add(current: np.ndarray, decay: float, grads: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """``out = decay * current + grads``, all ``(n_rows, n_params)`` float32 (``decay`` rounded to float32 first)."""
    decay32 = np.float32(decay)
    for r in range(current.shape[0]):
        for i in range(current.shape[1]):
            out[r, i] = decay32 * current[r, i] + grads[r, i]


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def row_l1_norms(direction: np.ndarray) -> np.ndarray:  # pragma: no cover
    """:return: the L1 norm of each row of ``(n_rows, n_params)``, float32 (summed in float64)"""
    norms = np.empty(direction.shape[0], dtype=np.float32)
    for r in range(direction.shape[0]):
        total = 0.0
        for i in range(direction.shape[1]):
            total += abs(np.float64(direction[r, i]))
        norms[r] = total
    return norms


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def add_weighted_rows(params: np.ndarray, direction: np.ndarray, weights: np.ndarray) -> None:  # pragma: no cover
    """In place: ``params += sum_r weights[r] * direction[r]``, the sum over rows in float64, then rounded."""
    total = np.zeros(params.shape[0], dtype=np.float64)
    for r in range(direction.shape[0]):
        weight = np.float64(weights[r])
        for i in range(params.shape[0]):
            total[i] += weight * direction[r, i]
    for i in range(params.shape[0]):
        params[i] = params[i] + total[i]


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def categorical(
    logits: np.ndarray,
    uniform: np.ndarray,
    actions: np.ndarray,
    log_probs: np.ndarray,
    probs: np.ndarray,
    log_prob: np.ndarray,
    entropy: np.ndarray,
) -> None:  # pragma: no cover
    """
    Log-softmax of each row of ``logits`` ``(rows, n)``, written into ``log_probs`` and ``probs``, with the entropy and
    the log-probability of ``actions`` per row. If ``uniform`` has one draw per row, ``actions`` are first sampled by
    inverse transform: the number of cumulative probabilities below the draw (at most ``n - 1``).
    """
    n_rows, n = logits.shape
    sample = uniform.shape[0] == n_rows
    for r in range(n_rows):
        top = np.float64(logits[r, 0])
        for j in range(1, n):
            top = max(top, np.float64(logits[r, j]))
        total = 0.0
        for j in range(n):
            total += math.exp(np.float64(logits[r, j]) - top)
        log_total = math.log(total)
        h = 0.0
        below = 0
        cumulative = 0.0
        for j in range(n):
            lp = np.float64(logits[r, j]) - top - log_total
            p = math.exp(lp)
            log_probs[r, j] = lp
            probs[r, j] = p
            h -= p * lp
            cumulative += p
            if sample and cumulative < uniform[r]:
                below += 1
        if sample:
            actions[r] = min(below, n - 1)
        entropy[r] = h
        log_prob[r] = log_probs[r, actions[r]]
