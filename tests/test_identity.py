"""OneStepAC learns SB3's identity environments (small, fast sanity checks of learning, not benchmarks)."""

import pytest
from stable_baselines3.common.envs import IdentityEnv, IdentityEnvBox, IdentityEnvMultiDiscrete
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_ac_plus import OneStepAC


@pytest.mark.parametrize("seed", [0, 1])
def test_discrete_identity(seed: int) -> None:
    env = IdentityEnv(4)
    model = OneStepAC("MlpPolicy", env, seed=seed).learn(2000)
    mean, _ = evaluate_policy(model, IdentityEnv(4), n_eval_episodes=10, deterministic=True)
    assert mean >= 90  # random play scores 25


def test_multidiscrete_identity() -> None:
    model = OneStepAC("MlpPolicy", IdentityEnvMultiDiscrete(2), seed=0).learn(2000)
    mean, _ = evaluate_policy(model, IdentityEnvMultiDiscrete(2), n_eval_episodes=10, deterministic=True)
    assert mean >= 90


@pytest.mark.parametrize("seed", [0, 2])
def test_continuous_identity(seed: int) -> None:
    # Independent states: traces only carry credit to unrelated states, so this uses the textbook lambda = 0
    # (and gamma = 0.95, as SB3's own identity tests do).
    env = IdentityEnvBox(eps=0.5)
    model = OneStepAC("MlpPolicy", env, gamma=0.95, trace_lambda=0.0, seed=seed).learn(3000)
    mean, _ = evaluate_policy(model, IdentityEnvBox(eps=0.5), n_eval_episodes=10, deterministic=True)
    assert mean >= 85  # random play scores about 50
