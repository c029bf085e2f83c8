"""Saving and loading keep every piece of state: predictions are equal and resumed training is the same run."""

import base64
import json
import zipfile

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_ac_plus import OneStepAC, StreamingActorCriticPolicy

CONFIGS = {
    "traces-fast-path": dict(),
    "obgd-fast-path": dict(update_rule="obgd"),
    "obgd-torch-path-2-envs": dict(update_rule="obgd", _fast=False, n_envs=2),
    "traces-torch-path-2-envs": dict(_fast=False, n_envs=2),
    "no-normalisers": dict(normalize_observations=False, normalize_rewards=False),
    "no-obs-normaliser-torch-path": dict(_fast=False, normalize_observations=False),
    "no-reward-scaler": dict(normalize_rewards=False),
    "no-traces": dict(trace_lambda=0.0),
    "no-traces-no-normalisers": dict(trace_lambda=0.0, normalize_observations=False, normalize_rewards=False),
    "n-step-windows": dict(n_steps=3, trace_lambda=0.0),
    "n-step-windows-no-normalisers": dict(n_steps=3, trace_lambda=0.0, normalize_observations=False, normalize_rewards=False),
    "adam-optimizer": dict(update_rule="optimizer", trace_lambda=0.0, learning_rate=1e-3),
    "adam-optimizer-no-normalisers": dict(
        update_rule="optimizer", trace_lambda=0.0, learning_rate=1e-3, normalize_observations=False, normalize_rewards=False
    ),
    "adaptive-obgd-second-moments": dict(update_rule="adaptive_obgd"),
    "adaptive-obgd-n-step-one-env": dict(update_rule="adaptive_obgd", n_steps=4, trace_lambda=0.0),
    "adaptive-obgd-torch-path-2-envs": dict(update_rule="adaptive_obgd", _fast=False, n_envs=2),
    "pink-noise-fast-path": dict(_env="Pendulum-v1", noise_beta=1.0),
    "red-noise-torch-path-2-envs": dict(_env="Pendulum-v1", noise_beta=2.0, _fast=False, n_envs=2),
    "gsde-2-envs": dict(_env="Pendulum-v1", use_sde=True, n_envs=2),
    "gsde-sample-freq": dict(_env="Pendulum-v1", use_sde=True, sde_sample_freq=16),
    "gsde-torch-path": dict(_env="Pendulum-v1", use_sde=True, _fast=False),
    "adam-optimizer-torch-path": dict(update_rule="optimizer", trace_lambda=0.0, learning_rate=1e-3, _fast=False),
    "4-envs": dict(n_envs=4),
    "gaussian-2-envs": dict(_env="Pendulum-v1", n_envs=2),
    "n-step-windows-2-envs": dict(n_steps=3, trace_lambda=0.0, n_envs=2),
    "adaptive-obgd-reference-2-envs": dict(update_rule="adaptive_obgd", _fast=False, n_envs=2),
    "adam-4-envs": dict(update_rule="optimizer", trace_lambda=0.0, learning_rate=1e-3, n_envs=4),
    "intentional": dict(update_rule="intentional", learning_rate=0.05, critic_learning_rate=0.5),
    "intentional-reference-2-envs": dict(
        update_rule="intentional", learning_rate=0.05, critic_learning_rate=0.5, _fast=False, n_envs=2
    ),
    "adam-gsde-4-envs": dict(
        _env="MountainCarContinuous-v0",
        update_rule="optimizer",
        trace_lambda=0.0,
        learning_rate=1e-4,
        use_sde=True,
        sde_sample_freq=16,
        n_envs=4,
    ),
}


def _make(config: dict, env_seed: int = 7) -> OneStepAC:
    config = dict(config)
    fast = config.pop("_fast", True)
    env = make_vec_env(config.pop("_env", "CartPole-v1"), n_envs=config.pop("n_envs", 1), seed=env_seed)
    model = OneStepAC("MlpPolicy", env, seed=0, **config)
    model._use_kernels = fast
    return model


def _flat(model: OneStepAC) -> th.Tensor:
    """Every parameter and buffer of the policy (the observation normaliser's statistics too)."""
    return th.cat([t.detach().reshape(-1).double() for t in model.policy.state_dict().values()])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_resume_from_saved_model_equals_uninterrupted_run(name: str, tmp_path) -> None:
    config = CONFIGS[name]
    uninterrupted = _make(config)
    uninterrupted.learn(700)
    uninterrupted.learn(700, reset_num_timesteps=False)

    first_half = _make(config)
    first_half.learn(700)
    env = first_half.get_env()
    first_half.save(tmp_path / "half")
    th.manual_seed(1234)  # anything may use the global generator between save and load
    resumed = OneStepAC.load(tmp_path / "half", env=env, force_reset=False)
    resumed._use_kernels = first_half._use_kernels
    resumed.learn(700, reset_num_timesteps=False)

    assert resumed.num_timesteps == uninterrupted.num_timesteps == 1400
    assert th.equal(_flat(resumed), _flat(uninterrupted))
    assert resumed._n_updates == uninterrupted._n_updates
    for state in ("reward_scaler", "actor_traces", "windows"):
        assert (getattr(resumed._state, state) is None) == (getattr(uninterrupted._state, state) is None)
    if uninterrupted._state.reward_scaler is not None:
        assert resumed._state.reward_scaler.stats.count == uninterrupted._state.reward_scaler.stats.count == 1400
    if uninterrupted._state.actor_moments is not None:
        # one row per env step; with n-step windows, one per state whose return is complete (the last ones still wait)
        rows = uninterrupted._state.moments_count
        assert rows == 1400 if resumed.n_steps == 1 else 1400 - resumed.n_steps * resumed.n_envs < rows < 1400
        assert resumed._state.moments_count == rows
        assert th.equal(resumed._state.critic_moments, uninterrupted._state.critic_moments)
    if uninterrupted._state.intent_stats is not None:
        assert th.equal(resumed._state.intent_stats, uninterrupted._state.intent_stats)
    if uninterrupted._state.colored_noise is not None:
        assert np.array_equal(resumed._state.colored_noise.sequences, uninterrupted._state.colored_noise.sequences)
    if uninterrupted._state.sde_noise is not None:
        assert th.equal(resumed._state.sde_noise.eps, uninterrupted._state.sde_noise.eps)


def _raw_pendulum_observations() -> np.ndarray:
    return (np.random.default_rng(0).uniform(-1, 1, size=(20, 3)) * [1, 1, 8]).astype(np.float32)


def test_round_trip_gives_equal_predictions_on_raw_observations(tmp_path) -> None:
    model = OneStepAC("MlpPolicy", "Pendulum-v1", seed=0).learn(500)
    model.save(tmp_path / "model.zip")
    loaded = OneStepAC.load(tmp_path / "model.zip")
    raw = _raw_pendulum_observations()
    expected, _ = model.predict(raw, deterministic=True)
    got, _ = loaded.predict(raw, deterministic=True)
    assert np.array_equal(expected, got)
    assert loaded.obs_normalizer.statistics().count == model.obs_normalizer.statistics().count == 501
    # The normaliser matters: the same networks on unnormalised observations act differently.
    loaded.policy.obs_normalizer = None
    unnormalised, _ = loaded.policy.predict(raw, deterministic=True)
    assert not np.array_equal(unnormalised, got)


def test_policy_alone_acts_as_the_model_on_raw_observations(tmp_path) -> None:
    model = OneStepAC("MlpPolicy", "Pendulum-v1", seed=0).learn(500)
    raw = _raw_pendulum_observations()
    expected, _ = model.predict(raw, deterministic=True)
    assert np.array_equal(model.policy.predict(raw, deterministic=True)[0], expected)

    model.policy.save(tmp_path / "policy.pth")
    policy = StreamingActorCriticPolicy.load(tmp_path / "policy.pth")
    assert np.array_equal(policy.predict(raw, deterministic=True)[0], expected)
    with th.no_grad():
        obs = th.as_tensor(raw)
        assert th.equal(policy.predict_values(obs), model.policy.predict_values(obs))
        assert th.equal(policy(obs, deterministic=True)[0], model.policy(obs, deterministic=True)[0])
        actions = th.as_tensor(expected)
        for got, want in zip(policy.evaluate_actions(obs, actions), model.policy.evaluate_actions(obs, actions), strict=True):
            assert th.equal(got, want)

    # Parameters moved into another model carry the normaliser's statistics.
    other = OneStepAC("MlpPolicy", "Pendulum-v1", seed=1)
    other.set_parameters(model.get_parameters())
    assert np.array_equal(other.predict(raw, deterministic=True)[0], expected)

    # evaluate_policy with the policy alone gives the model's returns (deterministic env and policy; the last digits
    # may differ because the model's parameters are views of one vector, the loaded policy's are not).
    returns = []
    for agent in (model, policy):
        env = make_vec_env("Pendulum-v1", n_envs=1, seed=3)
        returns.append(evaluate_policy(agent, env, n_eval_episodes=2, return_episode_rewards=True)[0])
    assert np.allclose(returns[0], returns[1], rtol=1e-6, atol=0.0)


def test_model_of_another_version_is_refused(tmp_path) -> None:
    model = OneStepAC("MlpPolicy", "CartPole-v1", seed=0)
    model._save_format = 2  # what an earlier version saved
    model.save(tmp_path / "old")
    with pytest.raises(ValueError, match="another version of sb3-ac-plus"):
        OneStepAC.load(tmp_path / "old")


@pytest.mark.parametrize("algorithm", [PPO, A2C])
def test_loading_another_algorithms_model_names_it(algorithm: type, tmp_path) -> None:
    algorithm("MlpPolicy", "CartPole-v1", seed=0).save(tmp_path / "other")
    with pytest.raises(ValueError, match=f"holds a {algorithm.__name__}"):
        OneStepAC.load(tmp_path / "other")


def test_loaded_model_keeps_training(tmp_path) -> None:
    model = OneStepAC("MlpPolicy", "CartPole-v1", seed=0).learn(300)
    model.save(tmp_path / "model")
    loaded = OneStepAC.load(tmp_path / "model", env=make_vec_env("CartPole-v1", n_envs=2, seed=3))
    before = _flat(loaded).clone()
    loaded.learn(300)
    assert not th.equal(before, _flat(loaded))
    assert loaded._state.actor_traces.shape[0] == 2


class ThreeActionsEnv(gym.Env):
    """A Box action space of three entries (as Hopper's)."""

    observation_space = spaces.Box(-1.0, 1.0, (2,))
    action_space = spaces.Box(-1.0, 1.0, (3,))

    def reset(self, *, seed=None, options=None):
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(2, dtype=np.float32), 0.0, True, False, {}


@pytest.mark.parametrize(
    "env_id, kwargs, expected",
    [
        ("CartPole-v1", dict(), ("intentional", 0.005, 0.5)),
        ("CartPole-v1", dict(learning_rate=0.01), ("intentional", 0.01, 0.5)),
        ("CartPole-v1", dict(critic_learning_rate=0.3), ("intentional", 0.005, 0.3)),
        ("CartPole-v1", dict(update_rule="obgd"), ("obgd", 1.0, None)),
        ("Pendulum-v1", dict(), ("intentional", 0.005, 0.5)),
        ("Pendulum-v1", dict(update_rule="obgd", learning_rate=0.5), ("obgd", 0.5, None)),
        ("Pendulum-v1", dict(update_rule="adaptive_obgd", critic_learning_rate=2.0), ("adaptive_obgd", 1.0, 2.0)),
        ("three-actions", dict(), ("intentional", 0.015, 0.5)),
    ],
)
def test_step_sizes_default_by_rule_and_action_dimensions_and_are_saved(
    env_id: str, kwargs: dict, expected: tuple, tmp_path
) -> None:
    env = ThreeActionsEnv() if env_id == "three-actions" else env_id
    model = OneStepAC("MlpPolicy", env, seed=0, **kwargs)
    for candidate in (model, OneStepAC.load(_saved(model, tmp_path)), OneStepAC.load(_saved(model, tmp_path), env=model.env)):
        assert (candidate.update_rule, candidate.learning_rate, candidate.critic_learning_rate) == expected
        critic = expected[2] if expected[2] is not None else expected[1]
        assert (candidate.lr_schedule(1.0), candidate.critic_lr_schedule(0.5)) == (expected[1], critic)


def _saved(model: OneStepAC, tmp_path) -> str:
    model.save(tmp_path / "model.zip")
    return str(tmp_path / "model.zip")


def test_get_and_set_parameters() -> None:
    source = OneStepAC("MlpPolicy", "CartPole-v1", seed=0).learn(300)
    target = OneStepAC("MlpPolicy", "CartPole-v1", seed=1)
    target.set_parameters(source.get_parameters())
    assert th.equal(_flat(source), _flat(target))
    target.learn(100)  # the parameters still live in the vector the update writes to
    assert not th.equal(_flat(source), _flat(target))


def test_policy_alone_round_trip(tmp_path) -> None:
    model = OneStepAC("MlpPolicy", "CartPole-v1", seed=0, policy_kwargs=dict(net_arch=[32, 16], sparsity=0.5)).learn(200)
    model.policy.save(tmp_path / "policy.pth")
    policy = StreamingActorCriticPolicy.load(tmp_path / "policy.pth")
    assert policy.sparsity == 0.5 and policy.layer_norm
    assert all(th.equal(a, b) for a, b in zip(policy.state_dict().values(), model.policy.state_dict().values(), strict=True))
    obs = th.randn(5, 4)
    with th.no_grad():
        # Equal up to rounding: the model's parameters are views of one vector, the loaded policy's are not.
        assert th.allclose(policy.predict_values(obs), model.policy.predict_values(obs), rtol=1e-6, atol=1e-6)


def test_same_seed_same_run_and_different_seed_different_run() -> None:
    runs = [OneStepAC("MlpPolicy", "CartPole-v1", seed=seed).learn(500) for seed in (4, 4, 5)]
    assert th.equal(_flat(runs[0]), _flat(runs[1]))
    assert not th.equal(_flat(runs[0]), _flat(runs[2]))


def test_set_env_starts_new_episodes_with_fresh_traces(monkeypatch) -> None:
    model = OneStepAC("MlpPolicy", "CartPole-v1", seed=1).learn(100)
    assert not model._last_episode_starts[0]  # mid-episode: the traces hold something
    assert th.count_nonzero(model._state.actor_traces) > 0
    model.set_env(make_vec_env("CartPole-v1", n_envs=1, seed=9))
    assert model._last_obs is None
    reset_calls = []
    original = model._new_episodes
    monkeypatch.setattr(model, "_new_episodes", lambda: reset_calls.append(1) or original())
    model.learn(50, reset_num_timesteps=False)
    assert reset_calls == [1]
    assert model.num_timesteps == 150


@pytest.mark.parametrize("config", ["traces-fast-path", "n-step-windows", "adam-optimizer"])
def test_saved_online_state_is_plain_data(config: str, tmp_path) -> None:
    model = _make(CONFIGS[config])
    model.learn(300)
    model.save(tmp_path / "model")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        data = json.loads(archive.read("data"))
    pickled = base64.b64decode(data["_online_state"][":serialized:"])
    assert b"sb3_ac_plus" not in pickled  # arrays, numbers and lists only: no class of this package
    for name in ("_state", "_generator"):
        assert name not in data


def test_learning_and_resuming_leave_torch_global_generator_alone(tmp_path) -> None:
    for fast in (True, False):
        model = OneStepAC("MlpPolicy", "Pendulum-v1", seed=0)
        model._use_kernels = fast
        th.manual_seed(123)
        model.learn(100)
        assert th.equal(th.rand(3), th.manual_seed(123) and th.rand(3))  # the model samples with its own generator
        model.save(tmp_path / "model")
        resumed = OneStepAC.load(tmp_path / "model", env=model.get_env(), force_reset=False)
        resumed._use_kernels = fast
        th.manual_seed(7)
        resumed.learn(100, reset_num_timesteps=False)
        assert th.equal(th.rand(3), th.manual_seed(7) and th.rand(3))
