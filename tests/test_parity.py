"""The update, checked twice: the compiled kernels against the reference update (the parity matrix), and the
reference against formulas computed by hand with torch autograd."""

import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_ac_plus import NonFiniteError, OneStepAC
from sb3_ac_plus.one_step_ac.fast import FlatOptimizer
from sb3_ac_plus.one_step_ac.online_state import BETA2, EPS
from sb3_ac_plus.one_step_ac.policy_outputs import actor_outputs, critic_values
from sb3_ac_plus.one_step_ac.reference import ReferenceUpdate

GAMMA = 0.9

# ---------------------------------------------------------------- the parity matrix: kernels against the reference

ACTIONS = {
    "categorical": dict(_env="CartPole-v1"),
    "gaussian": dict(_env="Pendulum-v1"),
    "gsde": dict(_env="Pendulum-v1", use_sde=True, sde_sample_freq=8),
}
RULES = {
    "obgd": dict(update_rule="obgd"),
    "adaptive_obgd": dict(update_rule="adaptive_obgd"),
    "sgd": dict(update_rule="sgd", learning_rate=0.001, critic_learning_rate=0.003),
    "adam": dict(update_rule="optimizer", learning_rate=3e-4, critic_learning_rate=1e-3),
    "intentional": dict(update_rule="intentional", learning_rate=0.05, critic_learning_rate=0.5),
}
RETURNS = {"traces": dict(trace_lambda=0.8), "n-step": dict(n_steps=3, trace_lambda=0.0)}


def _pair(config: dict, n_envs: int, steps: int = 25) -> tuple[OneStepAC, OneStepAC]:
    """The same model trained twice from the same seed, by the kernels and by the reference."""
    config = dict(config)
    env_id = config.pop("_env")
    if config.get("update_rule") == "optimizer":
        config["trace_lambda"] = 0.0  # a torch optimizer has no traces
    models = []
    for kernels in (True, False):
        model = OneStepAC("MlpPolicy", make_vec_env(env_id, n_envs=n_envs, seed=4), ent_coef=0.05, seed=0, **config)
        model._use_kernels = kernels
        model.learn(steps * n_envs, log_interval=None)
        assert model._engine.name == ("kernels" if kernels else "reference")
        models.append(model)
    return models[0], models[1]


def _assert_close(got: th.Tensor, want: th.Tensor, atol: float = 2e-5) -> None:
    assert got.shape == want.shape
    assert th.allclose(got, want, rtol=1e-4, atol=atol), float((got - want).abs().max())


@pytest.mark.parametrize("n_envs", [1, 3])
@pytest.mark.parametrize("returns", list(RETURNS))
@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("actions", list(ACTIONS))
def test_kernels_compute_the_reference_update(actions: str, rule: str, returns: str, n_envs: int) -> None:
    kernels, reference = _pair({**ACTIONS[actions], **RULES[rule], **RETURNS[returns]}, n_envs)
    assert not th.equal(kernels._flat_params, OneStepAC("MlpPolicy", kernels.get_env(), seed=0)._flat_params)
    # The intentional rule divides by RMSProp's scale, which makes the direction of a tiny gradient entry about 1 and
    # so magnifies its last-bit differences over a run; its formulas are checked at 1e-5 against the hand-computed
    # steps below.
    _assert_close(kernels._flat_params, reference._flat_params, atol=5e-4 if rule == "intentional" else 2e-5)
    for name in ("actor_traces", "critic_traces", "actor_moments", "critic_moments", "intent_stats"):
        got, want = getattr(kernels._state, name), getattr(reference._state, name)
        assert (got is None) == (want is None)
        if got is not None:
            scale = max(1.0, float(want.abs().max())) * (1e-2 if rule == "intentional" else 1e-4)
            _assert_close(got.float(), want.float(), atol=scale)
    assert kernels._state.moments_count == reference._state.moments_count
    if rule == "adam":
        same = dict(zip(map(id, reference._split.trained), kernels._split.trained, strict=True))
        for param, state in reference.policy.optimizer.state.items():
            twin = kernels.policy.optimizer.state[same[id(param)]]
            assert float(twin["step"]) == float(state["step"]) > 0
            _assert_close(twin["exp_avg_sq"], state["exp_avg_sq"], atol=1e-7)


@pytest.mark.parametrize("activation", [th.nn.LeakyReLU, th.nn.Tanh, th.nn.ReLU])
@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("net_arch", [[16, 8], [], dict(pi=[12], vf=[6, 6])])
def test_kernels_compute_the_reference_update_for_every_network(activation, layer_norm: bool, net_arch) -> None:
    policy_kwargs = dict(activation_fn=activation, layer_norm=layer_norm, net_arch=net_arch)
    kernels, reference = _pair(dict(_env="CartPole-v1", policy_kwargs=policy_kwargs), 2)
    _assert_close(kernels._flat_params, reference._flat_params)


def test_configurations_the_kernels_do_not_compute_run_the_reference() -> None:
    shared = OneStepAC("SharedMlpPolicy", "CartPole-v1", seed=0).learn(20, log_interval=None)
    rmsprop = dict(optimizer_class=th.optim.RMSprop)
    other_optimizer = OneStepAC(
        "MlpPolicy",
        "CartPole-v1",
        update_rule="optimizer",
        trace_lambda=0.0,
        learning_rate=1e-3,
        policy_kwargs=rmsprop,
        seed=0,
    ).learn(20, log_interval=None)
    assert shared._engine.name == other_optimizer._engine.name == "reference"


# ---------------------------------------------------------------- the reference against formulas computed by hand


class RecordingEnv(gym.Env):
    """Random 3-d observations, a reward that depends on the action, episodes of fixed length; records everything."""

    def __init__(self, episode_length: int = 50, truncate: bool = False, continuous: bool = False) -> None:
        super().__init__()
        self.observation_space = spaces.Box(-5.0, 5.0, shape=(3,), dtype=np.float32)
        # Wide bounds: actions are never clipped, so the recorded action is the sampled one.
        self.action_space = spaces.Box(-100.0, 100.0, shape=(2,)) if continuous else spaces.Discrete(3)
        self.episode_length = episode_length
        self.truncate = truncate
        self.actions: list = []
        self.observations: list[np.ndarray] = []  # every observation returned, resets included
        self.rewards: list[float] = []
        self._t = 0

    def _obs(self) -> np.ndarray:
        obs = self.np_random.normal(size=3).astype(np.float32)
        self.observations.append(obs)
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        self.actions.append(np.array(action))
        self._t += 1
        reward = float(np.sum(action) == 1) + 0.5 * float(self._t)
        self.rewards.append(reward)
        end = self._t >= self.episode_length
        return self._obs(), reward, end and not self.truncate, end and self.truncate, {}


def _model(env: gym.Env, fast: bool, **kwargs) -> OneStepAC:
    params = dict(
        learning_rate=0.05,
        critic_learning_rate=0.2,
        gamma=GAMMA,
        trace_lambda=0.0,
        ent_coef=0.0,
        update_rule="sgd",
        normalize_observations=False,
        normalize_rewards=False,
        seed=3,
        policy_kwargs=dict(net_arch=[16, 16], sparsity=0.5),
    )
    params.update(kwargs)
    model = OneStepAC("MlpPolicy", DummyVecEnv([lambda: env]), **params)
    model._use_kernels = fast
    return model


def _params(model: OneStepAC) -> list[th.Tensor]:
    return [p.detach().clone() for p in model._split.trained]


def _reference_one_step(model, before, obs, action, reward, bootstrap_obs, bootstrap: float, ent_coef: float = 0.0):
    """
    theta + step * delta * grad, delta from the parameters before the update (for both actor and critic); the step is
    the learning rate (sgd) or ObGD's bounded step lr / max(1, lr * kappa * max(|delta|, 1) * |grad|_1).
    """
    policy = model.policy
    with th.no_grad():
        for p, value in zip(model._split.trained, before, strict=True):
            p.copy_(value)
    obs_t = th.as_tensor(obs[None])
    values = critic_values(policy, obs_t)
    with th.no_grad():
        next_value = critic_values(policy, th.as_tensor(bootstrap_obs[None]))[0]
    delta = (reward + GAMMA * bootstrap * next_value - values[0]).detach()
    actor = actor_outputs(policy, obs_t, th.as_tensor(np.asarray(action)[None]))
    objective = actor.log_prob[0] + ent_coef * th.sign(delta) * actor.entropy[0]
    actor_grads = th.autograd.grad(objective, model._split.actor)
    critic_grads = th.autograd.grad(values[0], model._split.critic)

    def step_size(lr: float, kappa: float, grads) -> float:
        if model.update_rule == "sgd":
            return lr
        norm = sum(float(g.abs().sum()) for g in grads)
        return lr / max(1.0, lr * kappa * max(abs(float(delta)), 1.0) * norm)

    actor_step = step_size(model.learning_rate, model.actor_kappa, actor_grads)
    critic_step = step_size(model.critic_learning_rate, model.critic_kappa, critic_grads)
    expected = {}
    for p, g in zip(model._split.actor, actor_grads, strict=True):
        expected[id(p)] = p.detach() + actor_step * delta * g
    for p, g in zip(model._split.critic, critic_grads, strict=True):
        expected[id(p)] = p.detach() + critic_step * delta * g
    return [expected[id(p)].clone() for p in model._split.trained], float(delta)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("rule", ["sgd", "obgd"])
def test_one_update_matches_hand_computed_reference(fast: bool, continuous: bool, rule: str) -> None:
    env = RecordingEnv(continuous=continuous)
    model = _model(env, fast, update_rule=rule, learning_rate=0.5, critic_learning_rate=2.0)
    before = _params(model)
    model.learn(1, log_interval=None)
    assert (model._engine.name == "kernels") == fast
    after = _params(model)

    obs, next_obs = env.observations[0], env.observations[1]
    expected, delta = _reference_one_step(model, before, obs, env.actions[0], env.rewards[0], next_obs, 1.0)
    assert abs(delta) > 1e-3
    for got, want in zip(after, expected, strict=True):
        assert th.allclose(got, want, atol=1e-6), (got - want).abs().max()

    # The known ordering bug (critic first, then delta recomputed for the actor) gives another actor update.
    policy = model.policy
    with th.no_grad():
        for p, value in zip(model._split.trained, expected, strict=True):
            p.copy_(value)
        recomputed = env.rewards[0] + GAMMA * critic_values(policy, th.as_tensor(next_obs[None]))[0]
        recomputed = recomputed - critic_values(policy, th.as_tensor(obs[None]))[0]
    assert abs(float(recomputed) - delta) > 1e-4


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("continuous", [False, True])
def test_entropy_bonus_enters_scaled_by_sign_of_delta(fast: bool, continuous: bool) -> None:
    env = RecordingEnv(continuous=continuous)
    model = _model(env, fast, ent_coef=0.5)
    before = _params(model)
    model.learn(1, log_interval=None)
    after = _params(model)
    expected, _ = _reference_one_step(
        model, before, env.observations[0], env.actions[0], env.rewards[0], env.observations[1], 1.0, ent_coef=0.5
    )
    without_entropy, _ = _reference_one_step(
        model, before, env.observations[0], env.actions[0], env.rewards[0], env.observations[1], 1.0, ent_coef=0.0
    )
    for got, want in zip(after, expected, strict=True):
        assert th.allclose(got, want, atol=1e-6)
    assert any(not th.allclose(a, b, atol=1e-6) for a, b in zip(expected, without_entropy, strict=True))


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("truncate", [True, False])
def test_truncation_bootstraps_from_terminal_observation(fast: bool, truncate: bool) -> None:
    env = RecordingEnv(episode_length=1, truncate=truncate)
    model = _model(env, fast)
    before = _params(model)
    model.learn(1, log_interval=None)
    # observations: [reset, terminal, next episode's reset]
    assert len(env.observations) == 3
    obs, terminal_obs = env.observations[0], env.observations[1]
    bootstrap = 1.0 if truncate else 0.0
    expected, _ = _reference_one_step(model, before, obs, env.actions[0], env.rewards[0], terminal_obs, bootstrap)
    model_again = _model(RecordingEnv(episode_length=1, truncate=truncate), fast)
    model_again.learn(1, log_interval=None)
    for got, want in zip(_params(model_again), expected, strict=True):
        assert th.allclose(got, want, atol=1e-6)
    # Bootstrapping from the next episode's first observation instead would be a different update.
    wrong, _ = _reference_one_step(model, before, obs, env.actions[0], env.rewards[0], env.observations[2], 1.0)
    if truncate:
        assert any(not th.allclose(w, e, atol=1e-6) for w, e in zip(wrong, expected, strict=True))


@pytest.mark.parametrize("fast", [True, False])
def test_traces_accumulate_with_gamma_lambda_and_reset_at_episode_end(fast: bool) -> None:
    # Step sizes so small that the parameters do not move: every gradient is taken at the initial parameters.
    lam = 0.7
    env = RecordingEnv(episode_length=3)
    model = _model(env, fast, trace_lambda=lam, learning_rate=1e-12, critic_learning_rate=1e-12)
    policy = model.policy

    def actor_grad(step: int) -> th.Tensor:
        obs_t = th.as_tensor(env.observations[step][None])
        actor = actor_outputs(policy, obs_t, th.as_tensor(np.asarray(env.actions[step])[None]))
        return th.cat([g.reshape(-1) for g in th.autograd.grad(actor.log_prob[0], model._split.actor)])

    def critic_grad(step: int) -> th.Tensor:
        value = critic_values(policy, th.as_tensor(env.observations[step][None]))[0]
        return th.cat([g.reshape(-1) for g in th.autograd.grad(value, model._split.critic)])

    model.learn(2, log_interval=None)
    decay = GAMMA * lam
    assert th.allclose(model._state.actor_traces[0], actor_grad(1) + decay * actor_grad(0), atol=1e-5)
    assert th.allclose(model._state.critic_traces[0], critic_grad(1) + decay * critic_grad(0), atol=1e-5)
    model.learn(1, log_interval=None, reset_num_timesteps=False)  # the episode ends at its third step
    assert th.count_nonzero(model._state.actor_traces) == 0
    assert th.count_nonzero(model._state.critic_traces) == 0


def test_traces_reset_only_for_the_env_whose_episode_ended() -> None:
    envs = DummyVecEnv([lambda: RecordingEnv(episode_length=2), lambda: RecordingEnv(episode_length=5)])
    model = OneStepAC("MlpPolicy", envs, seed=0, trace_lambda=0.8)
    model.learn(4, log_interval=None)  # two VecEnv steps: env 0 just ended its episode, env 1 did not
    traces = model._state.actor_traces
    assert th.count_nonzero(traces[0]) == 0
    assert th.count_nonzero(traces[1]) > 0


def test_n_step_targets_equal_hand_computed_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    env = RecordingEnv(episode_length=5)
    # Step sizes far below float32's resolution: the value function stays fixed, so the targets can be recomputed.
    model = _model(env, False, n_steps=3, learning_rate=1e-30, critic_learning_rate=1e-30)
    before = _params(model)
    deltas = []
    original = ReferenceUpdate.update

    def record(self, *args):
        status, row, stats = original(self, *args)
        deltas.append(stats[:, 0].copy())
        return status, row, stats

    monkeypatch.setattr(ReferenceUpdate, "update", record)
    model.learn(10, log_interval=None)  # two episodes of 5 steps
    assert all(th.allclose(a, b, rtol=0.0, atol=1e-20) for a, b in zip(before, _params(model), strict=True))

    obs = [th.as_tensor(o) for o in env.observations]  # reset, 5 steps (the last terminal), reset, 5 steps
    with th.no_grad():
        values = [float(critic_values(model.policy, o[None])[0]) for o in obs]
    expected = []
    for episode in range(2):
        first = 6 * episode  # index of the episode's reset observation
        r = env.rewards[5 * episode : 5 * episode + 5]
        v = values[first : first + 6]
        ret = [sum(GAMMA**i * r[t + i] for i in range(len(r) - t)) for t in range(5)]
        expected.append([r[0] + GAMMA * r[1] + GAMMA**2 * r[2] + GAMMA**3 * v[3] - v[0]])
        expected.append([r[1] + GAMMA * r[2] + GAMMA**2 * r[3] + GAMMA**3 * v[4] - v[1]])
        expected.append([ret[2] - v[2], ret[3] - v[3], ret[4] - v[4]])  # terminated: no bootstrap
    assert len(deltas) == len(expected) == 6
    for got, want in zip(deltas, expected, strict=True):
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5), (got, want)


def test_large_steps_diverge_with_sgd_but_not_obgd_and_no_nan_is_written() -> None:
    obgd = _model(RecordingEnv(), True, update_rule="obgd", learning_rate=50.0, critic_learning_rate=50.0)
    obgd.learn(300, log_interval=None)
    assert th.isfinite(obgd._flat_params).all()

    sgd = _model(RecordingEnv(), True, update_rule="sgd", learning_rate=50.0, critic_learning_rate=50.0)
    with pytest.raises(NonFiniteError, match="step"):
        sgd.learn(300, log_interval=None)
    assert th.isfinite(sgd._flat_params).all()


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("continuous", [False, True])
def test_adaptive_obgd_matches_hand_computed_reference(fast: bool, continuous: bool) -> None:
    """Three steps of AdaptiveObGD with traces, replayed by hand: e <- gamma lambda e + g, v <- b2 v + (1 - b2)
    (delta e)^2, d = e / sqrt(v / (1 - b2^t) + eps), theta += lr / max(1, lr kappa max(|delta|, 1) |d|_1) delta d."""
    lam, n_steps = 0.5, 3
    env = RecordingEnv(continuous=continuous)
    model = _model(env, fast, update_rule="adaptive_obgd", trace_lambda=lam, learning_rate=0.5, critic_learning_rate=2.0)
    before = _params(model)
    model.learn(n_steps, log_interval=None)
    assert (model._engine.name == "kernels") == fast
    assert model._state.moments_count == n_steps

    policy = model.policy
    with th.no_grad():
        for p, value in zip(model._split.trained, before, strict=True):
            p.copy_(value)
    n_critic = sum(p.numel() for p in model._split.critic)
    flat_actor, flat_critic = model._flat_params[: model._n_actor], model._flat_params[-n_critic:]
    state = {
        part: {"e": th.zeros(flat.numel()), "v": th.zeros(flat.numel())}
        for part, flat in (("actor", flat_actor), ("critic", flat_critic))
    }
    for t in range(n_steps):
        obs_t = th.as_tensor(env.observations[t][None])
        values = critic_values(policy, obs_t)
        with th.no_grad():
            next_value = critic_values(policy, th.as_tensor(env.observations[t + 1][None]))[0]
        delta = (env.rewards[t] + GAMMA * next_value - values[0]).detach()
        actor = actor_outputs(policy, obs_t, th.as_tensor(np.asarray(env.actions[t])[None]))
        grads = {
            "actor": th.cat([g.reshape(-1) for g in th.autograd.grad(actor.log_prob[0], model._split.actor)]),
            "critic": th.cat([g.reshape(-1) for g in th.autograd.grad(values[0], model._split.critic)]),
        }
        settings = {"actor": (0.5, model.actor_kappa), "critic": (2.0, model.critic_kappa)}
        updates = {}
        for part, (lr, kappa) in settings.items():
            e = state[part]["e"] = GAMMA * lam * state[part]["e"] + grads[part]
            v = state[part]["v"] = BETA2 * state[part]["v"] + (1 - BETA2) * (delta * e) ** 2
            direction = e / th.sqrt(v / (1 - BETA2 ** (t + 1)) + EPS)
            step = lr / max(1.0, lr * kappa * max(abs(float(delta)), 1.0) * float(direction.abs().sum()))
            updates[part] = step * delta * direction
        with th.no_grad():
            flat_actor.add_(updates["actor"])
            flat_critic.add_(updates["critic"])
    expected = _params(model)
    model_again = _model(
        RecordingEnv(continuous=continuous),
        fast,
        update_rule="adaptive_obgd",
        trace_lambda=lam,
        learning_rate=0.5,
        critic_learning_rate=2.0,
    )
    model_again.learn(n_steps, log_interval=None)
    for got, want in zip(_params(model_again), expected, strict=True):
        assert th.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert th.allclose(model_again._state.critic_moments, state["critic"]["v"], rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("continuous", [False, True])
def test_intentional_update_matches_hand_computed_reference(fast: bool, continuous: bool) -> None:
    """Four steps of the intentional rule with traces, replayed by hand from its formulas (Sharifnassab et al., 2026):
    v <- b2 v + (1 - b2) g^2, d = sqrt(v / (1 - b2^t)) + eps, e <- gamma lambda e + g, sigma <- sigma + (1 - gamma
    lambda)(|g|_d^2 - sigma), step = eta / sqrt(sigma / (1 - (gamma lambda)^t) |e|_d^2), the TD error clipped at 20 times
    its running RMS (and, for the actor, divided by its running mean magnitude), theta += delta' step e / d."""
    lam, n_steps, etas = 0.5, 4, {"actor": 0.05, "critic": 0.5}
    settings = dict(
        update_rule="intentional", trace_lambda=lam, learning_rate=etas["actor"], critic_learning_rate=etas["critic"]
    )
    env = RecordingEnv(continuous=continuous)
    model = _model(env, fast, **settings)
    before = _params(model)
    model.learn(n_steps, log_interval=None)
    assert (model._engine.name == "kernels") == fast

    policy, decay = model.policy, GAMMA * lam
    with th.no_grad():
        for p, value in zip(model._split.trained, before, strict=True):
            p.copy_(value)
    n_critic = sum(p.numel() for p in model._split.critic)
    flats = {"actor": model._flat_params[: model._n_actor], "critic": model._flat_params[-n_critic:]}
    state = {
        part: dict(e=th.zeros(flat.numel()), v=th.zeros(flat.numel()), sigma=0.0, sq=1.0, mag=0.0)
        for part, flat in flats.items()
    }
    for t in range(1, n_steps + 1):
        obs_t = th.as_tensor(env.observations[t - 1][None])
        values = critic_values(policy, obs_t)
        with th.no_grad():
            next_value = critic_values(policy, th.as_tensor(env.observations[t][None]))[0]
        delta = float(env.rewards[t - 1] + GAMMA * next_value - values[0])
        actor = actor_outputs(policy, obs_t, th.as_tensor(np.asarray(env.actions[t - 1])[None]))
        grads = {
            "actor": th.cat([g.reshape(-1) for g in th.autograd.grad(actor.log_prob[0], model._split.actor)]),
            "critic": th.cat([g.reshape(-1) for g in th.autograd.grad(values[0], model._split.critic)]),
        }
        updates = {}
        for part, s in state.items():
            g = grads[part]
            s["v"] = BETA2 * s["v"] + (1 - BETA2) * g**2
            d = th.sqrt(s["v"] / (1 - BETA2**t)) + EPS
            s["e"] = decay * s["e"] + g
            s["sigma"] += (1 - decay) * (float((g**2 / d).sum()) - s["sigma"])
            step = etas[part] / np.sqrt(s["sigma"] / (1 - decay**t) * float((s["e"] ** 2 / d).sum()))
            s["sq"] = 0.9998 * s["sq"] + 0.0002 * delta**2
            clipped = float(np.clip(delta, -20 * np.sqrt(s["sq"] / (1 - 0.9998**t)), 20 * np.sqrt(s["sq"] / (1 - 0.9998**t))))
            if part == "actor":
                s["mag"] = 0.9998 * s["mag"] + 0.0002 * abs(clipped)
                clipped /= s["mag"] / (1 - 0.9998**t)
            updates[part] = clipped * step * s["e"] / d
        with th.no_grad():
            for part, flat in flats.items():
                flat.add_(updates[part])
    expected = _params(model)
    model_again = _model(RecordingEnv(continuous=continuous), fast, **settings)
    model_again.learn(n_steps, log_interval=None)
    for got, want in zip(_params(model_again), expected, strict=True):
        assert th.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert model_again._state.intent_stats[0, 2] > 0.0 and model_again._state.intent_stats[1, 2] == 0.0  # the actor's
    assert np.isclose(float(model_again._state.intent_stats[1, 0]), state["critic"]["sigma"], rtol=1e-4)


def test_policy_optimizer_state_is_a_view_of_the_flat_optimizer_state() -> None:
    model = OneStepAC("MlpPolicy", "CartPole-v1", update_rule="optimizer", trace_lambda=0.0, learning_rate=1e-3, seed=0)
    model.learn(20, log_interval=None)
    twin = model._engine.flat_optimizer.twin
    assert len(twin.param_groups) == 2 and all(len(group["params"]) == 1 for group in twin.param_groups)
    actor_state = twin.state[twin.param_groups[0]["params"][0]]
    first = model.policy.optimizer.param_groups[0]["params"][0]
    exp_avg = model.policy.optimizer.state[first]["exp_avg"]
    assert exp_avg.data_ptr() == actor_state["exp_avg"].data_ptr()  # the first parameter's slice of the flat state
    assert model.policy.optimizer.state[first]["step"] is actor_state["step"]
    assert float(actor_state["step"]) == 20
    with th.no_grad():
        actor_state["exp_avg"].fill_(0.5)
    assert th.all(exp_avg == 0.5)


def test_flat_optimizer_is_not_built_for_groups_out_of_vector_order() -> None:
    flat = th.zeros(10)
    a, b = flat[:4], flat[4:]
    grad = th.zeros(10)
    assert FlatOptimizer.build(th.optim.Adam([{"params": [a]}, {"params": [b]}]), flat, grad) is not None
    assert FlatOptimizer.build(th.optim.Adam([{"params": [b, a]}]), flat, grad) is None
    elsewhere = th.zeros(4)
    assert FlatOptimizer.build(th.optim.Adam([{"params": [elsewhere]}]), flat, grad) is None


# ---------------------------------------------------------------- several envs: one after the other


def _two_recording_envs(continuous: bool) -> tuple[DummyVecEnv, list[RecordingEnv]]:
    envs = [RecordingEnv(continuous=continuous), RecordingEnv(continuous=continuous)]
    return DummyVecEnv([lambda env=env: env for env in envs]), envs


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("rule", ["sgd", "obgd"])
def test_each_env_learns_from_the_parameters_the_previous_env_left(fast: bool, continuous: bool, rule: str) -> None:
    vec_env, envs = _two_recording_envs(continuous)
    model = OneStepAC(
        "MlpPolicy",
        vec_env,
        learning_rate=0.5,
        critic_learning_rate=2.0,
        gamma=GAMMA,
        trace_lambda=0.0,
        ent_coef=0.05,
        update_rule=rule,
        normalize_observations=False,
        normalize_rewards=False,
        seed=3,
        policy_kwargs=dict(net_arch=[16, 16], sparsity=0.5),
    )
    model._use_kernels = fast
    before = _params(model)
    model.learn(2, log_interval=None)  # one VecEnv step, a transition of each env
    assert (model._engine.name == "kernels") == fast
    after = _params(model)

    # By hand: env 0's one-env update from the parameters before, then env 1's from the parameters env 0 left.
    expected = before
    deltas = []
    for env in envs:
        obs, next_obs = env.observations[0], env.observations[1]
        expected, delta = _reference_one_step(
            model, expected, obs, env.actions[0], env.rewards[0], next_obs, 1.0, ent_coef=0.05
        )
        deltas.append(delta)
    assert min(abs(delta) for delta in deltas) > 1e-3
    for got, want in zip(after, expected, strict=True):
        assert th.allclose(got, want, atol=1e-5), (got - want).abs().max()


ADAM = dict(update_rule="optimizer", trace_lambda=0.0, learning_rate=1e-3)


@pytest.mark.parametrize("fast", [True, False])
def test_optimizer_steps_follow_each_other(fast: bool) -> None:
    """With SGD as the optimizer, each env's step is plain ``lr * delta * grad`` from where the previous one left."""
    config = dict(ADAM, ent_coef=0.0, policy_kwargs=dict(optimizer_class=th.optim.SGD))
    vec_env, envs = _two_recording_envs(continuous=False)
    kwargs = dict(gamma=GAMMA, normalize_observations=False, normalize_rewards=False, seed=3, learning_rate=0.5)
    model = OneStepAC("MlpPolicy", vec_env, **{**config, **kwargs})
    model._use_kernels = fast
    before = _params(model)
    model.learn(2, log_interval=None)
    after = _params(model)
    model.update_rule = "sgd"  # what the reference computes: lr * delta * grad
    model.critic_learning_rate = 0.5
    expected = before
    for env in envs:
        expected, _ = _reference_one_step(
            model, expected, env.observations[0], env.actions[0], env.rewards[0], env.observations[1], 1.0
        )
    for got, want in zip(after, expected, strict=True):
        assert th.allclose(got, want, atol=1e-5), (got - want).abs().max()


@pytest.mark.parametrize("path", ["kernels", "reference", "optimizer"])
def test_logged_statistics_are_the_mean_over_the_rows(path: str, tmp_path) -> None:
    """With SGD (and the optimizer's rule) the logged step sizes are the set ones, whichever way the rows are computed."""
    import pandas as pd
    from stable_baselines3.common.logger import configure

    if path == "optimizer":
        config = dict(ADAM)
    else:
        config = dict(update_rule="sgd", learning_rate=1e-4, critic_learning_rate=2e-4)
    model = OneStepAC("MlpPolicy", make_vec_env("CartPole-v1", n_envs=3, seed=0), seed=0, **config)
    model._use_kernels = path != "reference"
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(60, log_interval=1)
    logged = pd.read_csv(tmp_path / "progress.csv")
    assert len(logged) == 20  # one log per VecEnv step
    assert logged["train/actor_step_size"].to_numpy() == pytest.approx(model.learning_rate)
    assert logged["train/critic_step_size"].to_numpy() == pytest.approx(model.critic_learning_rate or model.learning_rate)
    for name in ("train/td_error_abs", "train/critic_loss", "train/entropy"):
        values = logged[name].to_numpy()
        assert np.isfinite(values).all() and (values > 0).all()


def test_learns_the_identity_env_with_several_envs() -> None:
    from stable_baselines3.common.envs import IdentityEnv
    from stable_baselines3.common.evaluation import evaluate_policy

    env = make_vec_env(lambda: IdentityEnv(4), n_envs=4, seed=0)
    model = OneStepAC("MlpPolicy", env, seed=0).learn(3000)
    mean_return, _ = evaluate_policy(model, make_vec_env(lambda: IdentityEnv(4), seed=1), n_eval_episodes=5)
    assert mean_return >= 90.0


def test_numba_starts_when_a_fast_path_model_is_built_not_in_learn() -> None:
    # A fresh process: numba's one-time start (its first compiled call) happens when OneStepAC builds a model the kernels
    # compute, and not for one they cannot (SB3's own ActorCriticPolicy runs the reference).
    script = textwrap.dedent(
        """
        from stable_baselines3.common.policies import ActorCriticPolicy

        from sb3_ac_plus import OneStepAC
        from sb3_ac_plus.one_step_ac.fast import compiler

        OneStepAC(ActorCriticPolicy, "CartPole-v1", normalize_observations=False, seed=0)
        print(len(compiler._identity.signatures))
        OneStepAC("MlpPolicy", "CartPole-v1", seed=0)
        print(len(compiler._identity.signatures))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "1"]
