"""Aggregate statistics over seeds, as recommended by Agarwal et al. (2021), "Deep RL at the Edge of the Statistical
Precipice": the interquartile mean (IQM) with a 95% stratified percentile bootstrap confidence interval.

rliable implements the same estimators, but rliable 1.2 needs ``arch<8``, whose 7.x releases fail to import with
pandas 3 (and it pulls statsmodels and seaborn); the functions below are the whole of what we would use from it, in
NumPy: ``metrics.aggregate_iqm`` is ``scipy.stats.trim_mean(scores, 0.25)`` and ``get_interval_estimates`` resamples
the runs of each task with replacement and takes percentiles.
"""

import math
from collections.abc import Sequence

import numpy as np


def _trim_mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """``scipy.stats.trim_mean(values, 0.25, axis)``: sort, drop ``int(0.25 * n)`` values from each end, average."""
    n = values.shape[axis]
    cut = int(0.25 * n)
    return np.sort(values, axis=axis).take(range(cut, n - cut), axis=axis).mean(axis=axis)


def iqm(scores: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of the scores (25% trimmed from each end)."""
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        raise ValueError("iqm of an empty sequence")
    return float(_trim_mean(values.ravel()))


def iqm_with_ci(
    scores: Sequence[float] | np.ndarray, confidence: float = 0.95, reps: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """IQM of the scores with a percentile bootstrap confidence interval.

    With one task, the stratified bootstrap resamples the runs (seeds) with replacement.

    :param scores: one score per run (seed)
    :param confidence: coverage of the interval
    :param reps: bootstrap resamples
    :param seed: seed of the resampling generator, so that a summary is reproducible
    :return: ``(iqm, lower, upper)``
    """
    values = np.asarray(scores, dtype=float)
    point = iqm(values)
    if values.size == 1:
        return point, point, point
    rng = np.random.default_rng(seed)
    resamples = values[rng.integers(0, values.size, size=(reps, values.size))]
    estimates = _trim_mean(resamples, axis=1)
    alpha = (1.0 - confidence) / 2.0
    lower, upper = np.quantile(estimates, [alpha, 1.0 - alpha])
    # The percentile interval of a trimmed mean can miss the point estimate by rounding on tiny samples.
    return point, float(min(lower, point)), float(max(upper, point))


def steps_to_threshold(steps: Sequence[int], returns: Sequence[float], threshold: float | None) -> float:
    """Env steps at the first evaluation whose mean return reaches ``threshold``; ``inf`` if none does, ``nan`` if the
    env has no threshold."""
    if threshold is None:
        return math.nan
    return float(next((step for step, value in zip(steps, returns, strict=True) if value >= threshold), math.inf))
