"""SB3's documented use cases, with OneStepAC in place of A2C: each works as it does for A2C."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper
from torch import nn

from sb3_ac_plus import OneStepAC
from sb3_ac_plus.policies.actor_critic import ConfigurableActorCriticPolicy


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_linear_policy(env_id: str, fast: bool) -> None:
    model = OneStepAC("MlpPolicy", env_id, policy_kwargs=dict(net_arch=[]), seed=0)
    model._use_kernels = fast
    before = model._flat_params.clone()
    model.learn(300, log_interval=None)
    assert (model._engine.name == "kernels") == fast
    assert len(model.policy.mlp_extractor.policy_net.linears) == 0
    assert not th.equal(before, model._flat_params)
    assert th.isfinite(model._flat_params).all()


class MatrixActionEnv(gym.Env):
    """Box actions of shape (2, 2); the reward is highest for the action matrix [[1, 0], [0, 1]]."""

    observation_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
    action_space = spaces.Box(-2.0, 2.0, shape=(2, 2), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        assert action.shape == (2, 2), action.shape
        self._t += 1
        reward = -float(np.square(action - np.eye(2)).sum())
        return self.observation_space.sample(), reward, False, self._t >= 20, {}


@pytest.mark.parametrize("fast", [True, False])
def test_multi_dimensional_box_actions(fast: bool) -> None:
    model = OneStepAC("MlpPolicy", MatrixActionEnv(), seed=0)
    model._use_kernels = fast
    model.learn(200, log_interval=None)
    action, _ = model.predict(MatrixActionEnv.observation_space.sample(), deterministic=True)
    assert action.shape == (2, 2)
    actions, _ = model.predict(np.zeros((5, 3), dtype=np.float32))
    assert actions.shape == (5, 2, 2)
    # A2C gives the same shapes.
    a2c_action, _ = A2C("MlpPolicy", MatrixActionEnv(), seed=0).predict(np.zeros((5, 3), dtype=np.float32))
    assert a2c_action.shape == actions.shape


class DropoutExtractor(BaseFeaturesExtractor):
    def __init__(self, observation_space: spaces.Box, features_dim: int = 16, p: float = 0.5) -> None:
        super().__init__(observation_space, features_dim)
        self.net = nn.Sequential(nn.Linear(observation_space.shape[0], features_dim), nn.Dropout(p), nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.net(observations)


def test_dropout_in_a_features_extractor_trains_in_train_mode_and_predicts_in_eval_mode() -> None:
    kwargs = dict(features_extractor_class=DropoutExtractor)
    model = OneStepAC("MlpPolicy", "CartPole-v1", policy_kwargs=kwargs, seed=0)
    modes = []
    model.learn(100, callback=lambda _l, _g: modes.append(model.policy.training) or True, log_interval=None)
    assert modes and all(modes)  # dropout is active while learning
    obs = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    first, _ = model.predict(obs, deterministic=True)
    second, _ = model.predict(obs, deterministic=True)
    assert np.array_equal(first, second)  # eval mode: no dropout noise
    assert not model.policy.training


class BatchNormExtractor(BaseFeaturesExtractor):
    def __init__(self, observation_space: spaces.Box, features_dim: int = 16) -> None:
        super().__init__(observation_space, features_dim)
        self.net = nn.Sequential(nn.Linear(observation_space.shape[0], features_dim), nn.BatchNorm1d(features_dim))

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.net(observations)


def test_batch_norm_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match=r"BatchNorm1d.*one sample.*LayerNorm"):
        OneStepAC("MlpPolicy", "CartPole-v1", policy_kwargs=dict(features_extractor_class=BatchNormExtractor))
    A2C("MlpPolicy", "CartPole-v1", policy_kwargs=dict(features_extractor_class=BatchNormExtractor))  # fine for A2C


def test_old_net_arch_form_warns_and_converts_as_sb3_does() -> None:
    old_form = [dict(pi=[32], vf=[16])]
    with pytest.warns(UserWarning, match="net_arch=dict"):
        model = OneStepAC("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=old_form), seed=0)
    with pytest.warns(UserWarning, match="net_arch=dict"):
        a2c = A2C("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=old_form))
    assert model.policy.net_arch == a2c.policy.net_arch == dict(pi=[32], vf=[16])
    assert [layer.out_features for layer in model.policy.mlp_extractor.policy_net.linears] == [32]
    assert [layer.out_features for layer in model.policy.mlp_extractor.value_net.linears] == [16]
    model.learn(50, log_interval=None)


def test_sb3_policy_class_needs_normalize_observations_false() -> None:
    with pytest.raises(ValueError, match="normalize_observations=False"):
        OneStepAC(ActorCriticPolicy, "CartPole-v1")
    model = OneStepAC(ActorCriticPolicy, "CartPole-v1", normalize_observations=False, seed=0).learn(100, log_interval=None)
    assert model.obs_normalizer is None


def test_normalisation_is_set_on_the_algorithm_not_in_policy_kwargs() -> None:
    with pytest.raises(ValueError, match=r"policy_kwargs\['normalize_observations'\]"):
        OneStepAC("MlpPolicy", "CartPole-v1", policy_kwargs=dict(normalize_observations=False))
    assert not ConfigurableActorCriticPolicy(
        spaces.Box(-1, 1, (3,)), spaces.Discrete(2), lambda _: 1e-3
    ).normalize_observations  # A2C and PPO get a policy without a normaliser by default


class RecordObservations(VecEnvWrapper):
    """Keeps every observation the VecEnv returns (resets and steps)."""

    def __init__(self, venv) -> None:
        super().__init__(venv)
        self.seen: list[np.ndarray] = []

    def reset(self):
        obs = self.venv.reset()
        self.seen.append(obs.copy())
        return obs

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self.seen.append(obs.copy())
        return obs, rewards, dones, infos


@pytest.mark.parametrize("fast", [True, False])
def test_observation_statistics_are_the_mean_and_variance_of_every_observation_seen(fast: bool) -> None:
    env = RecordObservations(DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2))
    model = OneStepAC("MlpPolicy", env, seed=0)
    model._use_kernels = fast
    model.learn(600, log_interval=None)
    seen = np.concatenate(env.seen).astype(np.float64)
    stats = model.obs_normalizer.statistics()
    assert stats.count.item() == len(seen) == 602
    assert np.allclose(stats.mean.numpy(), seen.mean(axis=0), rtol=1e-10, atol=1e-12)
    assert np.allclose(stats.var.numpy(), seen.var(axis=0, ddof=1), rtol=1e-10, atol=1e-12)
    raw = seen[:5].astype(np.float32)
    expected = np.clip((raw - seen.mean(axis=0)) / np.sqrt(seen.var(axis=0, ddof=1) + 1e-8), -10, 10)
    assert np.allclose(model.obs_normalizer.normalize_numpy(raw), expected, atol=1e-6)
    assert th.equal(model.obs_normalizer(th.as_tensor(raw)), th.as_tensor(model.obs_normalizer.normalize_numpy(raw)))
