"""Bad input fails early and clearly: a ValueError naming the parameter, or an error naming the step."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from sb3_ac_plus import NonFiniteError, OneStepAC


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(learning_rate=lambda _: -0.1), "learning_rate"),
        (dict(critic_learning_rate=0.0), "critic_learning_rate"),
        (dict(critic_learning_rate=float("nan")), "critic_learning_rate"),
        (dict(gamma=1.5), "gamma"),
        (dict(gamma=-0.1), "gamma"),
        (dict(trace_lambda=1.01), "trace_lambda"),
        (dict(n_steps=0), "n_steps"),
        (dict(n_steps=2.5), "n_steps"),
        (dict(ent_coef=-0.01), "ent_coef"),
        (dict(update_rule="adam"), "update_rule"),
        (dict(actor_kappa=0.0), "actor_kappa"),
        (dict(critic_kappa=-2.0), "critic_kappa"),
        (dict(clip_obs=0.0), "clip_obs"),
        (dict(n_steps=4, trace_lambda=0.8), "trace_lambda"),
        (dict(update_rule="optimizer", trace_lambda=0.8), "trace_lambda"),
        (dict(gamma="0.99"), "gamma"),
        (dict(update_rule="intentional", gamma=1.0, trace_lambda=1.0), "trace_lambda"),
        (dict(gamma=1.0, trace_lambda=1.0), "trace_lambda"),  # the default rule is the intentional one
        (dict(update_rule=None), "update_rule"),
        (dict(trace_lambda=None), "trace_lambda"),
        (dict(actor_kappa="3"), "actor_kappa"),
        (dict(use_sde="yes"), "use_sde"),
        (dict(policy_kwargs=dict(use_sde=True)), "use_sde"),
        (dict(policy_kwargs=dict(sparsity=1.0)), "sparsity"),
        (dict(policy_kwargs=dict(net_arch=[64, -1])), "net_arch"),
        (dict(policy_kwargs=dict(net_arch=dict(pi=[8], qf=[8]))), "net_arch"),
    ],
)
def test_invalid_hyperparameters_name_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        OneStepAC("MlpPolicy", "CartPole-v1", **kwargs)


class TupleEnv(gym.Env):
    observation_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2)))
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return (0, 0), {}

    def step(self, action):
        return (0, 0), 0.0, True, False, {}


class TupleActionEnv(gym.Env):
    observation_space = spaces.Box(-1, 1, (2,))
    action_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2)))

    def reset(self, *, seed=None, options=None):
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(2, dtype=np.float32), 0.0, True, False, {}


@pytest.mark.parametrize("env", [TupleEnv(), TupleActionEnv()])
def test_unsupported_spaces(env) -> None:
    with pytest.raises((ValueError, NotImplementedError, AssertionError), match=r"space|Tuple"):
        OneStepAC("MlpPolicy", env)


class BrokenEnv(gym.Env):
    """Becomes non-finite at step ``bad_step``: in the observation or in the reward."""

    observation_space = spaces.Box(-10, 10, (3,), dtype=np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, bad_step: int, where: str) -> None:
        self.bad_step, self.where, self.t = bad_step, where, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.normal(size=3).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        obs = self.np_random.normal(size=3).astype(np.float32)
        reward = 1.0
        if self.t == self.bad_step:
            if self.where == "obs":
                obs[1] = np.nan
            else:
                reward = np.inf
        return obs, reward, False, self.t % 20 == 0, {}


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("where", ["obs", "reward"])
def test_non_finite_environment_output_stops_learning_before_the_update(fast: bool, where: str) -> None:
    model = OneStepAC("MlpPolicy", BrokenEnv(bad_step=30, where=where), seed=0)
    model._use_fast_path = fast
    with pytest.raises(NonFiniteError, match=r"step 30") as error:
        model.learn(100)
    assert ("observation" if where == "obs" else "reward") in str(error.value)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    assert model._n_updates == 29


def test_bad_log_interval() -> None:
    with pytest.raises(ValueError, match="log_interval"):
        OneStepAC("MlpPolicy", "CartPole-v1").learn(10, log_interval=0)
