"""Compiled one-observation update and normalisation of the observation normaliser's statistics.

An online learner updates the statistics with one observation and normalises one or two observations at every step.
On arrays of a few elements each NumPy operation costs about a microsecond of dispatch, and the update and the
normalisation are about fifteen of them; these kernels do each in one call. They compute the same float64 operations
in the same order as :func:`~sb3_ac_plus.common.running_statistics.merge_batch` (one sample) and
:meth:`~sb3_ac_plus.policies.observation_normalizer.RunningMeanStdBuffers.normalize_numpy`, with no reassociation, so
they give the same numbers to the last bit (a test checks it).
"""

import math

import numpy as np
from numba import njit


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
    total = seen + 1.0
    for j in range(mean.shape[0]):
        value = np.float64(row[j])
        diff = value - mean[j]
        new_mean = mean[j] + diff / total
        if total < 2.0:
            new_var = 1.0
        else:
            sum_sq = diff * (value - new_mean)
            if seen >= 2.0:
                sum_sq += var[j] * (seen - 1.0)
            new_var = sum_sq / (total - 1.0)
        mean[j] = new_mean
        var[j] = new_var
        std[j] = math.sqrt(new_var + epsilon)
    count[0] = total


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
