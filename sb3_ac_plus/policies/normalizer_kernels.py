"""Compiled one-observation update and normalisation of the observation normaliser's statistics.

An online learner updates the statistics with one observation and normalises one or two observations at every step.
On arrays of a few elements each NumPy operation costs about a microsecond of dispatch, and the update and the
normalisation are about fifteen of them; these kernels do each in one call. The update compiles
:func:`~sb3_ac_plus.common.running_statistics.welford_step`, the one definition of the one-sample update, and the
normalisation computes the same float64 operations in the same order as
:meth:`~sb3_ac_plus.policies.observation_normalizer.RunningMeanStdBuffers.normalize_numpy`, with no reassociation, so
they give the same numbers to the last bit (a test checks it).
"""

import math
from collections.abc import Callable
from typing import cast

import numpy as np
from numba import njit

from sb3_ac_plus.common.running_statistics import welford_step

# the dispatcher's type hides the function's; numba compiles it for float64 scalars here
_welford_step = cast(
    Callable[[float, float, float, float], tuple[float, float]],
    njit(inline="always", error_model="numpy", fastmath=False)(welford_step),
)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)
def merge_row_(
    row: np.ndarray, mean: np.ndarray, var: np.ndarray, count: np.ndarray, std: np.ndarray, epsilon: float
) -> None:  # pragma: no cover (compiled)
    """
    Add one sample to the running statistics, in place: Welford's update, the variance 1 until two samples are seen.

    :param row: the sample, flattened (any float or integer dtype; computed in float64)
    :param mean: the running mean, flattened, float64
    :param var: the running sample variance, flattened, float64
    :param count: ``(1,)`` float64, the number of samples seen
    :param std: ``sqrt(var + epsilon)``, flattened, float64 (written)
    :param epsilon: added to the variance in ``std``
    """
    seen = count[0]
    for j in range(mean.shape[0]):
        new_mean, new_var = _welford_step(mean[j], var[j], seen, np.float64(row[j]))
        mean[j] = new_mean
        var[j] = new_var
        std[j] = math.sqrt(new_var + epsilon)
    count[0] = seen + 1.0


@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)
def normalize_rows(
    obs: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float, out: np.ndarray
) -> None:  # pragma: no cover (compiled)
    """
    ``out = float32(clip((obs - mean) / std, -clip, clip))``, computed in float64.

    :param obs: observations ``(rows, size)`` (any float or integer dtype)
    :param mean: the running mean, flattened, float64
    :param std: ``sqrt(var + epsilon)``, flattened, float64
    :param clip: the bound of the normalised values
    :param out: ``(rows, size)`` float32, written
    """
    for r in range(obs.shape[0]):
        for j in range(obs.shape[1]):
            value = (np.float64(obs[r, j]) - mean[j]) / std[j]
            if value > clip:  # as np.minimum and np.maximum: NaN stays NaN
                value = clip
            if value < -clip:
                value = -clip
            out[r, j] = value
