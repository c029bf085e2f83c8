"""Categorical sampling at one row per env, compiled: a softmax and an inverse-CDF draw without NumPy's dispatch."""

import math

import numpy as np
from numba import njit

from sb3_ac_plus.one_step_ac.fast.compiler import FAST_SUMS


@njit(cache=True, nogil=True, fastmath=FAST_SUMS)
def sample_categorical(logits: np.ndarray, uniform: np.ndarray, actions: np.ndarray) -> None:  # pragma: no cover
    """
    Sample ``actions[r]`` from the softmax of ``logits[r]`` by inverse transform, with one uniform draw per row: the
    number of cumulative probabilities below the draw (at most ``n - 1``), as the reference samples it.

    :param logits: ``(rows, n)``, float32
    :param uniform: ``(rows,)`` uniform draws in [0, 1)
    :param actions: ``(rows,)`` int64, written
    """
    n_rows, n = logits.shape
    for r in range(n_rows):
        top = np.float64(logits[r, 0])
        for j in range(1, n):
            top = max(top, np.float64(logits[r, j]))
        total = 0.0
        for j in range(n):
            total += math.exp(np.float64(logits[r, j]) - top)
        below = 0
        cumulative = 0.0
        for j in range(n):
            cumulative += math.exp(np.float64(logits[r, j]) - top) / total
            if cumulative < uniform[r]:
                below += 1
        actions[r] = min(below, n - 1)
