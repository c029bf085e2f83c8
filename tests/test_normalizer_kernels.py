"""The observation normaliser's compiled paths give the NumPy formulas' numbers to the last bit, in its buffers."""

import numpy as np
import pytest
import torch as th

from sb3_ac_plus.common.running_statistics import merge_batch
from sb3_ac_plus.policies.observation_normalizer import RunningMeanStdBuffers

CLIP = 3.0
EPSILON = 1e-8


def _reference_normalize(obs: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    normalized = (obs - mean) / np.sqrt(var + EPSILON)
    return np.clip(normalized, -CLIP, CLIP).astype(np.float32)


@pytest.mark.parametrize("shape", [(3,), (2, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_row_updates_and_normalisation_match_the_numpy_formulas(shape: tuple[int, ...], dtype: type) -> None:
    rng = np.random.default_rng(0)
    stats = RunningMeanStdBuffers(shape, CLIP, EPSILON)
    mean, var, count = np.zeros(shape), np.ones(shape), 0.0
    for step in range(40):
        row = (rng.normal(size=(1, *shape)) * 5.0 + 2.0).astype(dtype)
        stats.update(row)
        mean, var, count = merge_batch(mean, var, count, row)
        # The buffers themselves (what the policy saves and loads) hold the new statistics.
        np.testing.assert_array_equal(stats.mean.numpy(), mean)
        np.testing.assert_array_equal(stats.var.numpy(), var)
        assert float(stats.count) == count == step + 1
        # Large values reach the clip; a batch of one and of several rows.
        for n_rows in (1, 5):
            obs = (rng.normal(size=(n_rows, *shape)) * 20.0).astype(dtype)
            np.testing.assert_array_equal(stats.normalize_numpy(obs), _reference_normalize(obs, mean, var))
        # The torch forward pass (what predict uses) gives the same numbers.
        obs = rng.normal(size=(2, *shape)).astype(dtype)
        assert th.equal(stats(th.as_tensor(obs)), th.as_tensor(stats.normalize_numpy(obs)))


def test_a_loaded_state_is_what_the_compiled_update_continues_from() -> None:
    rng = np.random.default_rng(1)
    stats = RunningMeanStdBuffers((2,), CLIP, EPSILON)
    for _ in range(5):
        stats.update(rng.normal(size=(1, 2)).astype(np.float32))
    other = RunningMeanStdBuffers((2,), CLIP, EPSILON)
    other.update(rng.normal(size=(1, 2)).astype(np.float32))  # its compiled views exist before the load
    other.load_state_dict(stats.state_dict())
    row = rng.normal(size=(1, 2)).astype(np.float32)
    stats.update(row)
    other.update(row)
    for name in ("mean", "var", "count"):
        assert th.equal(getattr(stats, name), getattr(other, name))
    obs = rng.normal(size=(3, 2)).astype(np.float32)
    np.testing.assert_array_equal(stats.normalize_numpy(obs), other.normalize_numpy(obs))
