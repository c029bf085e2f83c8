"""Correlated exploration: colored noise (noise_beta) and gSDE (use_sde), one noise sequence per env and episode."""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_ac_plus import OneStepAC
from sb3_ac_plus.common.exploration import ColoredNoise
from sb3_ac_plus.one_step_ac.policy_outputs import normalized_observations

from tests.test_parity import RecordingEnv


def _lag_one_correlation(x: np.ndarray) -> float:
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


@pytest.mark.parametrize(("beta", "low", "high"), [(0.0, -0.1, 0.1), (1.0, 0.3, 0.95), (2.0, 0.95, 1.0)])
def test_colored_noise_is_standard_normal_per_step_and_correlated_in_time(beta: float, low: float, high: float) -> None:
    noise = ColoredNoise(beta, n_envs=2, action_dim=3, seed=0, sequence_length=4000)
    draws = np.stack([noise.sample() for _ in range(4000)])  # (time, env, dim)
    assert draws.shape == (4000, 2, 3) and draws.dtype == np.float32
    if beta < 2.0:  # red noise is dominated by its slowest frequencies: one sequence says little of its variance
        assert 0.7 < draws.std() < 1.3
    correlations = [_lag_one_correlation(draws[:, env, dim]) for env in range(2) for dim in range(3)]
    assert all(low < c < high for c in correlations), correlations
    assert not np.allclose(draws[:, 0], draws[:, 1])  # each env its own sequence


def test_colored_noise_restarts_ended_envs_and_replaces_used_up_sequences() -> None:
    noise = ColoredNoise(1.0, n_envs=2, action_dim=1, seed=0, sequence_length=5)
    first = noise.sequences.copy()
    for _ in range(3):
        noise.sample()
    noise.reset([1])
    assert list(noise.positions) == [3, 0]
    assert np.array_equal(noise.sequences[0], first[0]) and not np.array_equal(noise.sequences[1], first[1])
    noise.sample(), noise.sample()
    third = noise.sample()  # env 0 used its 5 draws: a new sequence starts
    assert list(noise.positions) == [1, 3] and third[0, 0] == noise.sequences[0, 0, 0]


def test_colored_noise_state_round_trip_continues_the_same_draws() -> None:
    noise = ColoredNoise(1.0, n_envs=2, action_dim=2, seed=4, sequence_length=8)
    for _ in range(5):
        noise.sample()
    copy = ColoredNoise.from_state(noise.state())
    for _ in range(20):  # past the end of the sequences: the generators continue alike
        assert np.array_equal(noise.sample(), copy.sample())


class NoiseRecorder(BaseCallback):
    """Records, at each step, the draw the model took from its colored noise and the env's position in its sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.draws: list[np.ndarray] = []
        self.positions: list[int] = []

    def _on_training_start(self) -> None:
        noise = self.model._state.colored_noise
        sample = noise.sample

        def recorded() -> np.ndarray:
            draw = sample()
            self.draws.append(draw.copy())
            return draw

        noise.sample = recorded

    def _on_step(self) -> bool:
        self.positions.append(int(self.model._state.colored_noise.positions[0]))
        return True


def _inferred_noise(model: OneStepAC, env: RecordingEnv, steps: range, first_obs: int) -> np.ndarray:
    """(a - mean(s)) / std of the actions of ``steps``, taken in the observations from ``first_obs`` on: the
    standard-normal draws behind them."""
    policy = model.policy
    with th.no_grad():
        obs = th.as_tensor(np.stack([env.observations[first_obs + i] for i in range(len(steps))]))
        mean = policy.action_net(policy.mlp_extractor.forward_actor(normalized_observations(policy, obs)))
        std = policy.log_std.exp()
    actions = th.as_tensor(np.stack([env.actions[t] for t in steps]), dtype=th.float32)
    return ((actions - mean) / std).numpy()


@pytest.mark.parametrize("fast", [True, False])
def test_actions_take_the_colored_draws_and_restart_them_at_episode_ends(fast: bool) -> None:
    env = RecordingEnv(episode_length=200, continuous=True)
    # Step sizes so small that the policy stays the initial one: the draws can be recovered from the actions.
    model = OneStepAC(
        "MlpPolicy",
        DummyVecEnv([lambda: env]),
        noise_beta=2.0,
        learning_rate=1e-12,
        normalize_observations=False,
        seed=0,
    )
    model._use_kernels = fast
    recorder = NoiseRecorder()
    model.learn(400, callback=recorder, log_interval=None)
    assert model._engine.name == ("kernels" if fast else "reference")
    # observations: 201 per episode (the reset, then one per step)
    first = _inferred_noise(model, env, range(200), first_obs=0)
    second = _inferred_noise(model, env, range(200, 400), first_obs=201)
    recorded = np.concatenate(recorder.draws)
    assert np.allclose(np.concatenate([first, second]), recorded, atol=1e-3)
    # red noise: consecutive draws nearly equal within an episode; each episode its own sequence from its start
    assert _lag_one_correlation(first[:, 0]) > 0.9
    assert recorder.positions[199] == 0 and recorder.positions[200] == 1
    assert not np.allclose(first[:50], second[:50], atol=0.1)


def test_white_noise_default_is_unchanged_by_the_colored_noise_option() -> None:
    runs = []
    for beta in (0.0, 0.0, 1.0):
        model = OneStepAC("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=2, seed=0), noise_beta=beta, seed=0)
        model.learn(300, log_interval=None)
        runs.append(model._flat_params.clone())
    assert th.equal(runs[0], runs[1]) and not th.equal(runs[0], runs[2])
    assert model._state.colored_noise is not None and model._state.colored_noise.n_envs == 2


@pytest.mark.parametrize("n_envs", [1, 2])
def test_gsde_actions_follow_the_episode_matrices_and_change_only_at_episode_ends(n_envs: int) -> None:
    envs = [RecordingEnv(episode_length=3, continuous=True) for _ in range(n_envs)]
    model = OneStepAC(
        "MlpPolicy",
        DummyVecEnv([lambda env=env: env for env in envs]),
        use_sde=True,
        learning_rate=1e-12,
        normalize_observations=False,
        seed=0,
    )
    eps_used = []  # the matrices each step acts with
    exploration_noise = model._exploration_noise

    def recorded():
        eps_used.append(model._state.sde_noise.eps.clone())
        return exploration_noise()

    model._exploration_noise = recorded
    model.learn(6 * n_envs, log_interval=None)
    assert len(eps_used) == 6
    # The matrices of an env stay for its episode (3 steps) and are drawn again when it ends.
    assert th.equal(eps_used[0], eps_used[2]) and th.equal(eps_used[3], eps_used[5])
    assert not th.equal(eps_used[2], eps_used[3])
    # Each action is SB3's gSDE sample: mean(s) + latent(s) @ (std * eps) with the env's matrix of that episode.
    policy = model.policy
    std = policy.action_dist.get_std(policy.log_std).detach()
    for env_idx, env in enumerate(envs):
        for t, obs_index in enumerate([0, 1, 2, 4, 5, 6]):  # observation 3 is the first episode's terminal one
            obs = th.as_tensor(env.observations[obs_index][None])
            with th.no_grad():
                latent = policy.mlp_extractor.forward_actor(policy.extract_features(obs, policy.pi_features_extractor))
                expected = policy.action_net(latent) + latent @ (std * eps_used[t][env_idx])
            assert np.allclose(env.actions[t], expected[0].numpy(), atol=1e-4)


def test_gsde_sample_freq_draws_new_matrices_every_k_steps() -> None:
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)  # 200-step episodes: no episode end in 12 steps
    model = OneStepAC("MlpPolicy", env, use_sde=True, sde_sample_freq=4, seed=0)
    seen = []

    class Watch(BaseCallback):
        def _on_step(self) -> bool:
            seen.append(self.model._state.sde_noise.eps.clone())
            return True

    model.learn(12, callback=Watch(), log_interval=None)
    changes = [t for t in range(1, 12) if not th.equal(seen[t], seen[t - 1])]
    assert changes == [3, 7, 11]  # drawn after the 4th, 8th and 12th updates


def test_gsde_learns_pendulum_like_a2c_config_shapes() -> None:
    model = OneStepAC("MlpPolicy", "Pendulum-v1", use_sde=True, seed=0)
    assert model.policy.use_sde and tuple(model.policy.log_std.shape) == (64, 1)  # (latent units, action dim)
    model.learn(300, log_interval=None)
    assert th.isfinite(model._flat_params).all()
    action, _ = model.predict(np.zeros(3, dtype=np.float32))
    assert action.shape == (1,)


@pytest.mark.parametrize(
    ("kwargs", "env_id", "name"),
    [
        (dict(noise_beta=-1.0), "Pendulum-v1", "noise_beta"),
        (dict(noise_beta=float("inf")), "Pendulum-v1", "noise_beta"),
        (dict(noise_beta=1.0), "CartPole-v1", "noise_beta"),
        (dict(noise_beta=1.0, use_sde=True), "Pendulum-v1", "noise_beta"),
        (dict(use_sde=True), "CartPole-v1", "gSDE"),
        (dict(use_sde=True, sde_sample_freq=0), "Pendulum-v1", "sde_sample_freq"),
        (dict(sde_sample_freq=-3), "Pendulum-v1", "sde_sample_freq"),
        (dict(policy_kwargs=dict(use_sde=True)), "Pendulum-v1", "use_sde"),
    ],
)
def test_invalid_exploration_settings_name_the_parameter(kwargs: dict, env_id: str, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        OneStepAC("MlpPolicy", env_id, **kwargs)
