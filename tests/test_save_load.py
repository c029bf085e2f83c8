"""Saving and loading keep every piece of state: predictions are equal and resumed training is the same run."""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_ac_plus import OneStepAC, StreamingActorCriticPolicy

CONFIGS = {
    "traces-fast-path": dict(),
    "traces-torch-path-2-envs": dict(_fast=False, n_envs=2),
    "n-step-windows": dict(n_steps=3, trace_lambda=0.0),
    "adam-optimizer": dict(update_rule="optimizer", trace_lambda=0.0, learning_rate=1e-3),
}


def _make(config: dict, env_seed: int = 7) -> OneStepAC:
    config = dict(config)
    fast = config.pop("_fast", True)
    env = make_vec_env("CartPole-v1", n_envs=config.pop("n_envs", 1), seed=env_seed)
    model = OneStepAC("MlpPolicy", env, seed=0, **config)
    model._use_fast_path = fast
    return model


def _flat(model: OneStepAC) -> th.Tensor:
    return th.cat([p.detach().reshape(-1) for p in model.policy.parameters()])


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
    resumed._use_fast_path = first_half._use_fast_path
    resumed.learn(700, reset_num_timesteps=False)

    assert resumed.num_timesteps == uninterrupted.num_timesteps == 1400
    assert th.equal(_flat(resumed), _flat(uninterrupted))


def test_round_trip_gives_equal_predictions_on_raw_observations(tmp_path) -> None:
    model = OneStepAC("MlpPolicy", "Pendulum-v1", seed=0).learn(500)
    model.save(tmp_path / "model.zip")
    loaded = OneStepAC.load(tmp_path / "model.zip")
    raw = np.random.default_rng(0).uniform(-1, 1, size=(20, 3)).astype(np.float32) * [1, 1, 8]
    expected, _ = model.predict(raw, deterministic=True)
    got, _ = loaded.predict(raw, deterministic=True)
    assert np.array_equal(expected, got)
    assert loaded._obs_normalizer.stats[None].count == model._obs_normalizer.stats[None].count
    # The normaliser matters: the raw policy on unnormalised observations acts differently.
    raw_policy, _ = loaded.policy.predict(raw, deterministic=True)
    assert not np.array_equal(raw_policy, got)


def test_loaded_model_keeps_training(tmp_path) -> None:
    model = OneStepAC("MlpPolicy", "CartPole-v1", seed=0).learn(300)
    model.save(tmp_path / "model")
    loaded = OneStepAC.load(tmp_path / "model", env=make_vec_env("CartPole-v1", n_envs=2, seed=3))
    before = _flat(loaded).clone()
    loaded.learn(300)
    assert not th.equal(before, _flat(loaded))
    assert loaded._actor_traces.n_envs == 2


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
    obs = th.randn(5, 4)
    with th.no_grad():
        assert th.equal(policy.predict_values(obs), model.policy.predict_values(obs))


def test_same_seed_same_run_and_different_seed_different_run() -> None:
    runs = [OneStepAC("MlpPolicy", "CartPole-v1", seed=seed).learn(500) for seed in (4, 4, 5)]
    assert th.equal(_flat(runs[0]), _flat(runs[1]))
    assert not th.equal(_flat(runs[0]), _flat(runs[2]))


def test_set_env_starts_new_episodes_with_fresh_traces(monkeypatch) -> None:
    model = OneStepAC("MlpPolicy", "CartPole-v1", seed=0).learn(100)
    assert th.count_nonzero(model._actor_traces.traces) > 0
    model.set_env(make_vec_env("CartPole-v1", n_envs=1, seed=9))
    assert model._last_obs is None
    reset_calls = []
    original = model._reset_episode_state
    monkeypatch.setattr(model, "_reset_episode_state", lambda: reset_calls.append(1) or original())
    model.learn(50, reset_num_timesteps=False)
    assert reset_calls == [1]
    assert model.num_timesteps == 150
