"""The reward scaler: rewards divided by the running standard deviation of each env's discounted return."""

import numpy as np
import pytest

from sb3_ac_plus.common.running_statistics import merge_batch
from sb3_ac_plus.common.reward_scaling import RewardScaler

GAMMA = 0.9


def _run(scaler: RewardScaler, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
    """Scale and commit each step in turn; the scaled rewards, one row per step."""
    out = []
    for step_rewards, step_dones in zip(rewards, dones, strict=True):
        scaled = scaler.scale(step_rewards)
        scaler.commit(scaled, step_dones)
        out.append(scaled.rewards)
    return np.array(out)


@pytest.mark.parametrize("n_envs", [1, 8])
def test_first_step_is_scaled_with_unit_variance_even_when_the_returns_are_equal(n_envs: int) -> None:
    # Every env's first return is the same constant reward: their sample variance is 0, yet the step is not blown up.
    scaler = RewardScaler(n_envs, GAMMA)
    scaled = scaler.scale(np.ones(n_envs))
    np.testing.assert_allclose(scaled.rewards, 1.0, rtol=1e-6)
    scaler.commit(scaled, np.zeros(n_envs, dtype=bool))
    # The statistics themselves hold the sample variance of what was seen (one sample: the variance is 1).
    assert scaler.stats.count == n_envs
    assert scaler.stats.var == (0.0 if n_envs > 1 else 1.0)


@pytest.mark.parametrize("n_envs", [1, 3])
def test_later_steps_divide_by_the_std_of_all_returns_seen(n_envs: int) -> None:
    rng = np.random.default_rng(0)
    n_steps = 30
    rewards = rng.normal(size=(n_steps, n_envs))
    dones = rng.random((n_steps, n_envs)) < 0.2
    scaled = _run(RewardScaler(n_envs, GAMMA), rewards, dones)
    # Reference: the discounted return of each env, reset after its episode ends, and the sample variance of every
    # return seen up to and including the step.
    returns = np.zeros(n_envs)
    seen: list[float] = []
    for t in range(n_steps):
        returns = returns * GAMMA + rewards[t]
        seen.extend(returns)
        var = np.var(seen, ddof=1) if t > 0 else 1.0
        np.testing.assert_allclose(scaled[t], rewards[t] / np.sqrt(var + 1e-8), rtol=1e-5)
        returns = np.where(dones[t], 0.0, returns)


def test_scale_changes_nothing_until_committed() -> None:
    scaler = RewardScaler(2, GAMMA)
    _run(scaler, np.array([[1.0, 2.0], [0.5, -1.0]]), np.zeros((2, 2), dtype=bool))
    before = (scaler.returns.copy(), scaler.stats.mean.copy(), scaler.stats.var.copy(), scaler.stats.count)
    scaler.scale(np.array([3.0, 4.0]))
    after = (scaler.returns, scaler.stats.mean, scaler.stats.var, scaler.stats.count)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)


def test_one_env_scales_as_the_batch_formula_to_the_last_bit() -> None:
    # One env's scaler computes in Python floats; the reference is the batch computation on one-element arrays. The
    # statistics are compared too: a float64 difference may not show in the float32 rewards.
    rng = np.random.default_rng(2)
    scaler = RewardScaler(1, GAMMA)
    returns, mean, var, count = np.zeros(1), np.zeros(()), np.ones(()), 0.0
    for _ in range(200):
        rewards = rng.normal(size=1).astype(np.float32)
        dones = rng.random(1) < 0.05
        scaled = scaler.scale(rewards)
        scaler.commit(scaled, dones)
        returns = returns * GAMMA + rewards
        new_mean, new_var, new_count = merge_batch(mean, var, count, returns)
        scale_var = new_var if count > 0 else np.ones_like(new_var)
        np.testing.assert_array_equal(scaled.rewards, (rewards / np.sqrt(scale_var + 1e-8)).astype(np.float32))
        mean, var, count = new_mean, new_var, new_count
        returns = np.where(dones, 0.0, returns)
        state = scaler.state()
        assert (state["mean"], state["var"], state["count"]) == (mean, var, count)
        np.testing.assert_array_equal(state["returns"], returns)
