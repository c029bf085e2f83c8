"""Running mean and variance of a stream of samples (Welford's algorithm, merged batch by batch with Chan's formula)."""

from typing import TypeVar

import numpy as np

Sample = TypeVar("Sample", float, np.ndarray)


def welford_step(mean: Sample, var: Sample, count: float, sample: Sample) -> tuple[Sample, Sample]:
    """
    The running mean and sample variance after one more sample (Welford's update), the one definition of it: on
    Python floats (the reward scaler with one env), on arrays (:func:`merge_batch` with one sample) and compiled per
    element (the observation normaliser's kernel), so all three give the same numbers to the last bit.

    Until two samples have been seen the variance is 1 (the choice made by stream AC(lambda)).

    :param mean: mean of the samples seen so far
    :param var: their sample variance
    :param count: how many were seen
    :param sample: the new sample
    :return: the new mean and variance
    """
    total = count + 1.0
    diff = sample - mean
    new_mean = mean + diff / total
    if total < 2.0:
        return new_mean, var * 0.0 + 1.0  # 1, as a float or an array of ones
    sum_sq = diff * (sample - new_mean)
    if count >= 2.0:
        sum_sq = sum_sq + var * (count - 1.0)
    return new_mean, sum_sq / (total - 1.0)


def merge_batch(mean: np.ndarray, var: np.ndarray, count: float, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """
    The running mean and sample variance after adding ``batch`` to the samples seen so far.

    Until two samples have been seen the variance is 1, so that the first observations are not blown up by a
    near-zero variance estimate (the choice made by stream AC(lambda)).

    :param mean: mean of the samples seen so far
    :param var: their sample variance (1 while fewer than two were seen)
    :param count: how many were seen
    :param batch: new samples stacked along the first axis
    :return: the new mean, variance and count (new arrays; the inputs are not modified)
    """
    batch = np.asarray(batch, dtype=np.float64)
    n_batch = batch.shape[0]
    total = count + n_batch
    if n_batch == 1:  # the usual online case: one env
        new_mean, new_var = welford_step(mean, var, count, batch[0])
        return new_mean, new_var, total
    if n_batch == 0:
        return mean, var, count
    batch_mean = batch.mean(axis=0)
    diff = batch_mean - mean
    new_mean = mean + diff * (n_batch / total)
    sum_sq = ((batch - batch_mean) ** 2).sum(axis=0) + diff**2 * (count * n_batch / total)
    if count >= 2:
        sum_sq += var * (count - 1)
    new_var = sum_sq / (total - 1) if total >= 2 else np.ones_like(mean)
    return new_mean, new_var, total


class RunningMeanStd:
    """
    Running mean and sample variance of arrays of one shape, in NumPy.

    :param shape: shape of one sample
    """

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = 0.0

    def update(self, batch: np.ndarray) -> None:
        """
        :param batch: samples stacked along the first axis
        """
        self.mean, self.var, self.count = merge_batch(self.mean, self.var, self.count, batch)
