"""The running mean and variance: Welford's one-sample update and Chan's batch merge against NumPy's formulas."""

import numpy as np
import pytest

from sb3_ac_plus.common.running_statistics import RunningMeanStd, merge_batch, welford_step


def test_one_sample_at_a_time_gives_numpys_mean_and_sample_variance() -> None:
    samples = np.random.default_rng(0).normal(3.0, 2.0, size=(500, 3))
    mean, var, count = np.zeros(3), np.ones(3), 0.0
    for i, sample in enumerate(samples):
        mean, var = welford_step(mean, var, count, sample)
        count += 1.0
        if i == 0:
            np.testing.assert_array_equal(var, np.ones(3))  # variance 1 until two samples are seen
    np.testing.assert_allclose(mean, samples.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var, samples.var(axis=0, ddof=1), rtol=1e-12)


def test_floats_and_arrays_take_the_same_steps_to_the_last_bit() -> None:
    samples = np.random.default_rng(1).normal(size=200) * 10.0
    mean_f, var_f = 0.0, 1.0
    mean_a, var_a = np.zeros(()), np.ones(())
    for count, sample in enumerate(samples):
        mean_f, var_f = welford_step(mean_f, var_f, float(count), float(sample))
        mean_a, var_a = welford_step(mean_a, var_a, float(count), sample)
        assert (mean_f, var_f) == (float(mean_a), float(var_a))


@pytest.mark.parametrize("chunk", [1, 2, 7])
def test_batches_merge_to_the_statistics_of_the_whole_stream(chunk: int) -> None:
    samples = np.random.default_rng(2).uniform(-5.0, 5.0, size=(140, 2))
    stats = RunningMeanStd((2,))
    for start in range(0, len(samples), chunk):
        stats.update(samples[start : start + chunk])
    assert stats.count == len(samples)
    np.testing.assert_allclose(stats.mean, samples.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.var, samples.var(axis=0, ddof=1), rtol=1e-12)


def test_an_empty_batch_changes_nothing() -> None:
    mean, var = np.array([1.0]), np.array([2.0])
    assert merge_batch(mean, var, 5.0, np.zeros((0, 1))) == (mean, var, 5.0)
