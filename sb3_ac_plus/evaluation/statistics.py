"""Aggregate statistics over seeds, as recommended by Agarwal et al. (2021), "Deep RL at the Edge of the Statistical
Precipice": the interquartile mean (IQM) with a 95% percentile bootstrap confidence interval, both from SciPy.

rliable implements the same estimators, but rliable 1.2 needs ``arch<8``, whose 7.x releases fail to import with
pandas 3; for one task its ``aggregate_iqm`` is ``scipy.stats.trim_mean(scores, 0.25)`` and its stratified bootstrap
is SciPy's bootstrap of the runs.
"""

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def iqm(scores: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of the scores, ``scipy.stats.trim_mean(scores, 0.25)``.

    :param scores: one score per run (seed)
    :return: the IQM
    :raises ValueError: for no score
    """
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        raise ValueError("iqm of an empty sequence")
    return float(stats.trim_mean(values.ravel(), 0.25))


def iqm_with_ci(
    scores: Sequence[float] | np.ndarray, confidence: float = 0.95, reps: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """IQM of the scores with a percentile bootstrap confidence interval (``scipy.stats.bootstrap``).

    With one task, the stratified bootstrap resamples the runs (seeds) with replacement. With one score, or scores
    that are all equal, there is nothing to resample (SciPy refuses a single observation, and its BCa interval is NaN
    for equal ones): the interval is the point itself, ``[x, x]``. A percentile interval need not contain its point
    estimate (with few seeds the bootstrap distribution of a trimmed mean is lumpy and can be skewed); it is widened
    to contain it, so that a summary never shows an IQM outside its interval.

    :param scores: one score per run (seed)
    :param confidence: coverage of the interval
    :param reps: bootstrap resamples
    :param seed: seed of the resampling generator, so that a summary is reproducible
    :return: ``(iqm, lower, upper)``
    """
    values = np.asarray(scores, dtype=float).ravel()
    point = iqm(values)
    if values.size == 1 or np.all(values == values[0]):
        return point, point, point
    result = stats.bootstrap(
        (values,),
        lambda sample, axis: stats.trim_mean(sample, 0.25, axis=axis),
        n_resamples=reps,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    lower, upper = result.confidence_interval
    return point, float(min(lower, point)), float(max(upper, point))


def steps_to_threshold(steps: Sequence[int], returns: Sequence[float], threshold: float | None) -> float:
    """Env steps at the first evaluation after training started (steps > 0) whose mean return reaches ``threshold``.

    The evaluation before training does not count: an untrained policy can score high by chance (on CartPole-v1
    A2C's seed 0 scores 500 before its first update), and a seed did not learn to reach the threshold in 0 steps.

    :param steps: env steps of each evaluation
    :param returns: mean return of each evaluation
    :param threshold: the env's reward threshold, or None
    :return: the steps; ``inf`` if no evaluation reaches the threshold, ``nan`` if the env has no threshold
    """
    if threshold is None:
        return math.nan
    hits = (step for step, value in zip(steps, returns, strict=True) if step > 0 and value >= threshold)
    return float(next(hits, math.inf))
