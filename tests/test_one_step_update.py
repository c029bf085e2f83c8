"""The update rule itself, checked against references computed by hand with torch autograd."""

import copy
import math
import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_ac_plus import OneStepAC
from sb3_ac_plus.one_step_ac.numpy_backend import NumpyActorCritic
from sb3_ac_plus.one_step_ac.torch_backend import actor_outputs, critic_values

GAMMA = 0.9


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
    model._use_fast_path = fast
    return model


def _params(model: OneStepAC) -> list[th.Tensor]:
    return [p.detach().clone() for p in model._trained_params]


def _reference_one_step(model, before, obs, action, reward, bootstrap_obs, bootstrap: float, ent_coef: float = 0.0):
    """
    theta + step * delta * grad, delta from the parameters before the update (for both actor and critic); the step is
    the learning rate (sgd) or ObGD's bounded step lr / max(1, lr * kappa * max(|delta|, 1) * |grad|_1).
    """
    policy = model.policy
    with th.no_grad():
        for p, value in zip(model._trained_params, before, strict=True):
            p.copy_(value)
    obs_t = th.as_tensor(obs[None])
    values = critic_values(policy, obs_t)
    with th.no_grad():
        next_value = critic_values(policy, th.as_tensor(bootstrap_obs[None]))[0]
    delta = (reward + GAMMA * bootstrap * next_value - values[0]).detach()
    actor = actor_outputs(policy, obs_t, th.as_tensor(np.asarray(action)[None]))
    objective = actor.log_prob[0] + ent_coef * th.sign(delta) * actor.entropy[0]
    actor_grads = th.autograd.grad(objective, model._actor_params)
    critic_grads = th.autograd.grad(values[0], model._critic_params)

    def step_size(lr: float, kappa: float, grads) -> float:
        if model.update_rule == "sgd":
            return lr
        norm = sum(float(g.abs().sum()) for g in grads)
        return lr / max(1.0, lr * kappa * max(abs(float(delta)), 1.0) * norm)

    actor_step = step_size(model.learning_rate, model.actor_kappa, actor_grads)
    critic_step = step_size(model.critic_learning_rate, model.critic_kappa, critic_grads)
    expected = {}
    for p, g in zip(model._actor_params, actor_grads, strict=True):
        expected[id(p)] = p.detach() + actor_step * delta * g
    for p, g in zip(model._critic_params, critic_grads, strict=True):
        expected[id(p)] = p.detach() + critic_step * delta * g
    return [expected[id(p)].clone() for p in model._trained_params], float(delta)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("rule", ["sgd", "obgd"])
def test_one_update_matches_hand_computed_reference(fast: bool, continuous: bool, rule: str) -> None:
    env = RecordingEnv(continuous=continuous)
    model = _model(env, fast, update_rule=rule, learning_rate=0.5, critic_learning_rate=2.0)
    before = _params(model)
    model.learn(1, log_interval=None)
    assert (model._backend.name == "numpy") == fast
    after = _params(model)

    obs, next_obs = env.observations[0], env.observations[1]
    expected, delta = _reference_one_step(model, before, obs, env.actions[0], env.rewards[0], next_obs, 1.0)
    assert abs(delta) > 1e-3
    for got, want in zip(after, expected, strict=True):
        assert th.allclose(got, want, atol=1e-6), (got - want).abs().max()

    # The known ordering bug (critic first, then delta recomputed for the actor) gives another actor update.
    policy = model.policy
    with th.no_grad():
        for p, value in zip(model._trained_params, expected, strict=True):
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
        return th.cat([g.reshape(-1) for g in th.autograd.grad(actor.log_prob[0], model._actor_params)])

    def critic_grad(step: int) -> th.Tensor:
        value = critic_values(policy, th.as_tensor(env.observations[step][None]))[0]
        return th.cat([g.reshape(-1) for g in th.autograd.grad(value, model._critic_params)])

    model.learn(2, log_interval=None)
    decay = GAMMA * lam
    assert th.allclose(model._actor_traces.traces[0], actor_grad(1) + decay * actor_grad(0), atol=1e-5)
    assert th.allclose(model._critic_traces.traces[0], critic_grad(1) + decay * critic_grad(0), atol=1e-5)
    model.learn(1, log_interval=None, reset_num_timesteps=False)  # the episode ends at its third step
    assert th.count_nonzero(model._actor_traces.traces) == 0
    assert th.count_nonzero(model._critic_traces.traces) == 0


def test_traces_reset_only_for_the_env_whose_episode_ended() -> None:
    envs = DummyVecEnv([lambda: RecordingEnv(episode_length=2), lambda: RecordingEnv(episode_length=5)])
    model = OneStepAC("MlpPolicy", envs, seed=0, trace_lambda=0.8)
    model.learn(4, log_interval=None)  # two VecEnv steps: env 0 just ended its episode, env 1 did not
    traces = model._actor_traces.traces
    assert th.count_nonzero(traces[0]) == 0
    assert th.count_nonzero(traces[1]) > 0


def _assert_matches_autograd(
    model: OneStepAC,
    obs: th.Tensor,
    actions: np.ndarray,
    values: np.ndarray,
    log_prob: np.ndarray,
    entropy: np.ndarray,
    entropy_weights: np.ndarray,
    grads: np.ndarray,
) -> None:
    """The NumPy path's values, log-probabilities, entropies and per-row gradients equal the torch policy's."""
    actor = actor_outputs(model.policy, obs, th.as_tensor(actions))
    torch_values = critic_values(model.policy, obs)
    assert np.allclose(values[: len(obs)], torch_values.detach().numpy(), atol=1e-5)
    assert np.allclose(log_prob, actor.log_prob.detach().numpy(), atol=1e-5)
    assert np.allclose(entropy, actor.entropy.detach().numpy(), atol=1e-5)
    for row in range(len(obs)):
        objective = actor.log_prob[row] + float(entropy_weights[row]) * actor.entropy[row]
        actor_grads = th.autograd.grad(objective, model._actor_params, retain_graph=True)
        critic_grads = th.autograd.grad(torch_values[row], model._critic_params, retain_graph=True)
        expected = th.cat([g.reshape(-1) for g in (*actor_grads, *critic_grads)]).numpy()
        assert np.allclose(grads[row], expected, atol=1e-5), np.abs(grads[row] - expected).max()


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("activation", [th.nn.LeakyReLU, th.nn.Tanh, th.nn.ReLU])
@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize(
    "net_arch, layer_norm_widths",
    [([8, 6], True), ([2, 5, 4], False), ([], True)],
    ids=["mlp", "narrower-than-input", "linear"],
)
def test_numpy_fast_path_gradients_equal_autograd(
    continuous: bool, activation, layer_norm: bool, net_arch: list, layer_norm_widths: bool
) -> None:
    # A first hidden layer narrower than the 3-dim observation checks the kernels' buffers, which hold the input too.
    # LayerNorm over 2 units is ill-conditioned (float32 autograd then differs by more than the tolerance): not there.
    layer_norm = layer_norm and layer_norm_widths
    env = RecordingEnv(continuous=continuous)
    model = _model(env, True, policy_kwargs=dict(net_arch=net_arch, activation_fn=activation, layer_norm=layer_norm))
    model._setup_backend()
    fast = model._backend.networks
    assert isinstance(fast, NumpyActorCritic)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(2, 3)).astype(np.float32)
    actions, state = fast.act(obs)
    values, cache = fast.values(np.concatenate([obs, obs[::-1]]))
    log_prob, entropy = fast.log_prob_entropy(state)
    entropy_weights = np.array([0.3, -0.2], dtype=np.float32)
    grads = fast.gradients(state, cache, entropy_weights, entropy)

    obs_t = th.as_tensor(obs)
    _assert_matches_autograd(model, obs_t, actions, values, log_prob, entropy, entropy_weights, grads)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("n_envs", [1, 3])
@pytest.mark.parametrize("ent_coef", [0.0, 0.05])
def test_numpy_and_torch_backends_train_the_same(env_id: str, n_envs: int, ent_coef: float) -> None:
    models = []
    for fast in (True, False):
        model = OneStepAC("MlpPolicy", make_vec_env(env_id, n_envs=n_envs, seed=1), ent_coef=ent_coef, seed=5)
        model._use_fast_path = fast
        model.learn(240, log_interval=None)
        assert model._backend.name == ("numpy" if fast else "torch")
        models.append(model)
    for a, b in zip(models[0]._trained_params, models[1]._trained_params, strict=True):
        assert th.allclose(a, b, atol=1e-4), (a - b).abs().max()
    assert th.allclose(models[0]._actor_traces.traces, models[1]._actor_traces.traces, atol=1e-4)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("n_envs", [1, 3])
@pytest.mark.parametrize("update_rule", ["obgd", "adaptive_obgd"])
def test_numpy_and_torch_backends_train_the_same_with_n_step_returns(env_id: str, n_envs: int, update_rule: str) -> None:
    """Episodes of CartPole end within the run (windows flushed at terminations and resets), Pendulum's do not."""
    models = []
    for fast in (True, False):
        env = make_vec_env(env_id, n_envs=n_envs, seed=1)
        model = OneStepAC("MlpPolicy", env, n_steps=4, trace_lambda=0.0, update_rule=update_rule, ent_coef=0.05, seed=5)
        model._use_fast_path = fast
        model.learn(240, log_interval=None)
        assert model._backend.name == ("numpy" if fast else "torch")
        models.append(model)
    assert models[0]._n_updates == models[1]._n_updates > 0
    for a, b in zip(models[0]._trained_params, models[1]._trained_params, strict=True):
        assert th.allclose(a, b, atol=1e-4), (a - b).abs().max()
    for window_a, window_b in zip(models[0]._windows, models[1]._windows, strict=True):
        assert len(window_a) == len(window_b)
        for (obs_a, action_a, reward_a), (obs_b, action_b, reward_b) in zip(window_a, window_b, strict=True):
            assert np.allclose(obs_a, obs_b, atol=1e-4) and np.allclose(action_a, action_b, atol=1e-4)
            assert reward_a == pytest.approx(reward_b, abs=1e-4)


def test_n_step_targets_equal_hand_computed_returns() -> None:
    env = RecordingEnv(episode_length=5)
    # Step sizes far below float32's resolution: the value function stays fixed, so the targets can be recomputed.
    model = _model(env, False, n_steps=3, learning_rate=1e-30, critic_learning_rate=1e-30)
    before = _params(model)
    deltas = []
    original = model._bounded_update

    def record(delta, *args, **kwargs):
        deltas.append(delta.detach().clone())
        return original(delta, *args, **kwargs)

    model._bounded_update = record
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
        assert np.allclose(got.numpy(), want, rtol=1e-5, atol=1e-5), (got, want)


def test_large_steps_diverge_with_sgd_but_not_obgd_and_no_nan_is_written() -> None:
    from sb3_ac_plus import NonFiniteError

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
    from sb3_ac_plus.one_step_ac.second_moments import BETA2, EPS

    lam, n_steps = 0.5, 3
    env = RecordingEnv(continuous=continuous)
    model = _model(env, fast, update_rule="adaptive_obgd", trace_lambda=lam, learning_rate=0.5, critic_learning_rate=2.0)
    before = _params(model)
    model.learn(n_steps, log_interval=None)
    assert (model._backend.name == "numpy") == fast
    assert model._actor_moments.count == n_steps

    policy = model.policy
    with th.no_grad():
        for p, value in zip(model._trained_params, before, strict=True):
            p.copy_(value)
    state = {
        part: {"e": th.zeros(flat.numel()), "v": th.zeros(flat.numel())}
        for part, flat in (("actor", model._flat_actor), ("critic", model._flat_critic))
    }
    for t in range(n_steps):
        obs_t = th.as_tensor(env.observations[t][None])
        values = critic_values(policy, obs_t)
        with th.no_grad():
            next_value = critic_values(policy, th.as_tensor(env.observations[t + 1][None]))[0]
        delta = (env.rewards[t] + GAMMA * next_value - values[0]).detach()
        actor = actor_outputs(policy, obs_t, th.as_tensor(np.asarray(env.actions[t])[None]))
        grads = {
            "actor": th.cat([g.reshape(-1) for g in th.autograd.grad(actor.log_prob[0], model._actor_params)]),
            "critic": th.cat([g.reshape(-1) for g in th.autograd.grad(values[0], model._critic_params)]),
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
            model._flat_actor.add_(updates["actor"])
            model._flat_critic.add_(updates["critic"])
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
    assert th.allclose(model_again._critic_moments.moments, state["critic"]["v"], rtol=1e-4, atol=1e-12)


def _two_env_update(combine_envs: str, n_envs: int = 2, **kwargs) -> tuple[th.Tensor, th.Tensor, OneStepAC]:
    envs = DummyVecEnv([RecordingEnv for _ in range(n_envs)])
    params = dict(learning_rate=0.5, critic_learning_rate=2.0, gamma=GAMMA, seed=3, combine_envs=combine_envs)
    model = OneStepAC("MlpPolicy", envs, **{**params, **kwargs})
    before = model._flat_params.clone()
    model.learn(n_envs, log_interval=None)  # one VecEnv step
    return before, model._flat_params.clone(), model


@pytest.mark.parametrize("rule", ["obgd", "sgd", "adaptive_obgd"])
def test_envs_updates_are_summed_or_averaged(rule: str) -> None:
    before, after_sum, _ = _two_env_update("sum", update_rule=rule)
    same_before, after_mean, _ = _two_env_update("mean", update_rule=rule)
    assert th.equal(before, same_before)
    assert not th.allclose(after_sum, before)
    # The same per-env updates: their sum is twice their mean.
    assert th.allclose(after_sum - before, 2.0 * (after_mean - before), atol=1e-6)


def test_bounded_sum_bounds_the_combined_update_as_one() -> None:
    # Large step sizes: ObGD's bound is active, so each env's update has an L1 norm of 1 / kappa (|delta| >= 1).
    kwargs = dict(learning_rate=100.0, critic_learning_rate=100.0, normalize_rewards=False, trace_lambda=0.0)
    before, after_sum, model = _two_env_update("sum", n_envs=4, **kwargs)
    _, after_bounded, _ = _two_env_update("bounded_sum", n_envs=4, **kwargs)
    n_actor = model._flat_actor.numel()
    summed = float((after_sum - before)[:n_actor].abs().sum())
    bounded = float((after_bounded - before)[:n_actor].abs().sum())
    assert bounded <= 1.0 / model.actor_kappa * (1 + 1e-4)
    assert summed > 1.5 / model.actor_kappa  # four bounded updates add up past one bound
    # At one env the two rules are the same.
    one_before, one_sum, _ = _two_env_update("sum", n_envs=1, **kwargs)
    _, one_bounded, _ = _two_env_update("bounded_sum", n_envs=1, **kwargs)
    assert th.equal(one_sum, one_bounded) and not th.equal(one_sum, one_before)


@pytest.mark.parametrize("activation", [th.nn.LeakyReLU, th.nn.Tanh])
@pytest.mark.parametrize("layer_norm", [True, False])
def test_numpy_fast_path_gsde_gradients_equal_autograd(activation, layer_norm: bool) -> None:
    """gSDE on the NumPy path: actions ``mean + latent @ (exp(log_std) * eps)``, and log pi, entropy and their
    gradients as SB3's StateDependentNoiseDistribution gives them through autograd (log_std ``(latent, actions)``)."""
    env = make_vec_env("MountainCarContinuous-v0", n_envs=2, seed=0)
    policy_kwargs = dict(net_arch=[8, 6], activation_fn=activation, layer_norm=layer_norm, log_std_init=-0.5)
    model = OneStepAC("MlpPolicy", env, use_sde=True, seed=0, policy_kwargs=policy_kwargs)
    model._setup_backend()
    assert model._backend.name == "numpy"
    fast = model._backend.networks
    obs = np.random.default_rng(0).normal(size=(2, 2)).astype(np.float32)
    eps = model._sde_noise.eps.numpy()
    actions, state = fast.act(obs, None, eps)
    values, cache = fast.values(np.concatenate([obs, obs[::-1]]))
    log_prob, entropy = fast.log_prob_entropy(state)
    entropy_weights = np.array([0.3, -0.2], dtype=np.float32)
    grads = fast.gradients(state, cache, entropy_weights, entropy)

    obs_t = th.as_tensor(obs)
    model._sde_noise.apply(model.policy)
    assert np.allclose(actions, actor_outputs(model.policy, obs_t).actions.numpy(), atol=1e-5)  # SB3's own sample
    _assert_matches_autograd(model, obs_t, actions, values, log_prob, entropy, entropy_weights, grads)
    # evaluate() at the same actions (the n-step update) gives the same state
    again = fast.evaluate(obs, actions)
    assert np.allclose(again["noise"], state["noise"], atol=1e-5) and np.allclose(again["std"], state["std"])


@pytest.mark.parametrize("use_sde", [True, False])
def test_acting_without_the_state_draws_the_same_actions(use_sde: bool) -> None:
    """The compiled updates recompute the actor's pass, so they act with ``with_state=False``: the same actions (and
    the same draws from the generator), no Gaussian state."""
    kwargs = dict(use_sde=True) if use_sde else dict()
    env = make_vec_env("MountainCarContinuous-v0", n_envs=2, seed=0)
    actions = []
    for with_state in (True, False):
        model = OneStepAC("MlpPolicy", env, seed=3, **kwargs)
        model._setup_backend()
        obs = np.random.default_rng(0).normal(size=(2, 2)).astype(np.float32)
        noise = model._sde_noise.eps.numpy() if use_sde else None
        backend = model._backend
        first, state = backend.act(obs, noise, with_state=with_state)
        second, _ = backend.act(obs, noise, with_state=with_state)
        assert (state is None) != with_state
        actions.append((first, second))
    for got, expected in zip(actions[1], actions[0], strict=True):
        assert np.array_equal(got, expected)
    assert use_sde == np.array_equal(actions[0][0], actions[0][1])  # white noise: two draws; gSDE: the same matrices


OPTIMIZER_CASES = {
    "adam": dict(),
    "rmsprop": dict(policy_kwargs=dict(optimizer_class=th.optim.RMSprop, optimizer_kwargs=dict(eps=1e-5))),
    "sgd-momentum": dict(
        learning_rate=1e-4, policy_kwargs=dict(optimizer_class=th.optim.SGD, optimizer_kwargs=dict(momentum=0.9))
    ),
    "adam-gsde": dict(_env="Pendulum-v1", use_sde=True, sde_sample_freq=4, _steps=50),
    "adam-n-step": dict(_env="Pendulum-v1", n_steps=4),
}


@pytest.mark.parametrize("case", list(OPTIMIZER_CASES))
def test_numpy_and_torch_backends_train_the_same_with_a_torch_optimizer(case: str) -> None:
    """update_rule="optimizer" on the NumPy path: gradients written into the flat gradient, the optimizer stepped on
    the flat vector (one tensor per group); the torch path steps it per parameter after autograd."""
    kwargs = dict(OPTIMIZER_CASES[case])
    env_id = kwargs.pop("_env", "CartPole-v1")
    # Over longer runs the paths part by more than float rounding, because a one-ulp difference grows through the
    # updates: with Adam and gSDE on Pendulum the largest parameter difference is 9e-6 after 2 x 75 steps of 3 envs and
    # 6e-5 after 2 x 100 (plain SGD stays within 1e-7), so that case runs 2 x 50. RMSprop with its default eps=1e-8
    # turns a rounding-sized gradient (1e-9) into a step of lr / 10: 1.5e-5 apart after 2 x 25 steps already; eps=1e-5
    # keeps such gradients at rounding size and the two paths within tolerance over 2 x 150.
    n_steps = kwargs.pop("_steps", 150)
    kwargs.setdefault("learning_rate", 1e-3)
    models = []
    for fast in (True, False):
        env = make_vec_env(env_id, n_envs=3, seed=1)
        model = OneStepAC("MlpPolicy", env, update_rule="optimizer", trace_lambda=0.0, ent_coef=0.05, seed=5, **kwargs)
        model._use_fast_path = fast
        model.learn(n_steps, log_interval=None)
        model.learn(n_steps, log_interval=None, reset_num_timesteps=False)  # a second learn() links the state again
        assert model._backend.name == ("numpy" if fast else "torch")
        assert (model._flat_optimizer is not None) == fast
        models.append(model)
    for a, b in zip(models[0]._trained_params, models[1]._trained_params, strict=True):
        assert th.allclose(a, b, rtol=1e-4, atol=1e-5), (a - b).abs().max()
    state_fast, state_torch = (m.policy.optimizer.state_dict()["state"] for m in models)
    assert state_fast.keys() == state_torch.keys() and len(state_fast) == len(models[0]._trained_params)
    for index, entries in state_torch.items():
        for key, value in entries.items():
            assert th.allclose(state_fast[index][key], value, rtol=1e-3, atol=1e-6), (index, key)


def test_policy_optimizer_state_is_a_view_of_the_flat_optimizer_state() -> None:
    model = OneStepAC("MlpPolicy", "CartPole-v1", update_rule="optimizer", trace_lambda=0.0, learning_rate=1e-3, seed=0)
    model.learn(20, log_interval=None)
    twin = model._flat_optimizer.twin
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
    from sb3_ac_plus.one_step_ac.flat_optimizer import FlatOptimizer

    flat = th.zeros(10)
    a, b = flat[:4], flat[4:]
    grad = th.zeros(10)
    assert FlatOptimizer.build(th.optim.Adam([{"params": [a]}, {"params": [b]}]), flat, grad) is not None
    assert FlatOptimizer.build(th.optim.Adam([{"params": [b, a]}]), flat, grad) is None
    elsewhere = th.zeros(4)
    assert FlatOptimizer.build(th.optim.Adam([{"params": [elsewhere]}]), flat, grad) is None


def _two_flat_groups(**adam_kwargs) -> tuple[th.optim.Adam, th.Tensor, th.Tensor]:
    flat = th.randn(13, generator=th.Generator().manual_seed(0))
    grad = th.zeros(13)
    a, b = flat[:5], flat[5:]
    a.grad, b.grad = grad[:5], grad[5:]
    optimizer = th.optim.Adam([{"params": [a], "lr": 1e-2}, {"params": [b], "lr": 3e-3}], **adam_kwargs)
    return optimizer, flat, grad


@pytest.mark.parametrize(
    "adam_kwargs", [dict(), dict(betas=(0.3, 0.8), eps=1e-5), dict(weight_decay=0.1)], ids=["default", "betas", "decay"]
)
def test_numpy_adam_steps_as_torch_adam(adam_kwargs: dict) -> None:
    from sb3_ac_plus.one_step_ac.numpy_adam import NumpyAdam

    reference, reference_flat, reference_grad = _two_flat_groups(**adam_kwargs)
    optimizer, flat, grad = _two_flat_groups(**adam_kwargs)
    numpy_adam = NumpyAdam(optimizer)
    rng = np.random.default_rng(1)
    for _ in range(30):
        step_grad = th.as_tensor(rng.normal(size=13).astype(np.float32))
        reference_grad.copy_(step_grad)
        grad.copy_(step_grad)
        reference.step()
        numpy_adam.step()
        assert th.allclose(flat, reference_flat, rtol=1e-5, atol=1e-7), (flat - reference_flat).abs().max()
    for param, reference_param in zip(optimizer.param_groups, reference.param_groups, strict=True):
        state, reference_state = optimizer.state[param["params"][0]], reference.state[reference_param["params"][0]]
        assert state.keys() == reference_state.keys()
        assert float(state["step"]) == float(reference_state["step"]) == 30
        for key in ("exp_avg", "exp_avg_sq"):
            assert th.allclose(state[key], reference_state[key], rtol=1e-5, atol=1e-8), key
    # The state it made is torch's: torch's own step carries on from it.
    reference.step()
    optimizer.step()
    assert th.allclose(flat, reference_flat, rtol=1e-5, atol=1e-7)
    # A loaded state (new tensors) is the one it steps next.
    optimizer.load_state_dict(copy.deepcopy(reference.state_dict()))  # load shares tensors otherwise
    reference.step()
    numpy_adam.step()
    assert th.allclose(flat, reference_flat, rtol=1e-5, atol=1e-7)
    for param, reference_param in zip(optimizer.param_groups, reference.param_groups, strict=True):
        state, reference_state = optimizer.state[param["params"][0]], reference.state[reference_param["params"][0]]
        assert float(state["step"]) == 32
        assert th.allclose(state["exp_avg_sq"], reference_state["exp_avg_sq"], rtol=1e-5, atol=1e-8)


def _adam_as_numpy_operations(optimizer: th.optim.Adam) -> None:
    """Reference: torch's single-tensor Adam step written as NumPy operations on float32 arrays (scalars rounded to
    float32 against them, as torch rounds them)."""
    for group in optimizer.param_groups:
        param = group["params"][0]
        state = optimizer.state[param]
        values, grad = param.detach().numpy(), param.grad.numpy()
        exp_avg, exp_avg_sq, step_count = (state[key].numpy() for key in ("exp_avg", "exp_avg_sq", "step"))
        step_count += 1.0
        beta1, beta2 = group["betas"]
        if group["weight_decay"] != 0:
            grad = grad + np.float32(group["weight_decay"]) * values
        weight = 1.0 - beta1
        if weight < 0.5:
            exp_avg += (grad - exp_avg) * np.float32(weight)
        else:
            exp_avg[:] = grad - (grad - exp_avg) * np.float32(1.0 - weight)
        exp_avg_sq[:] = exp_avg_sq * np.float32(beta2) + (grad * np.float32(1.0 - beta2)) * grad
        step = float(step_count)
        denom = np.sqrt(exp_avg_sq) / np.float32(math.sqrt(1.0 - beta2**step)) + np.float32(group["eps"])
        values += (exp_avg * np.float32(-group["lr"] / (1.0 - beta1**step))) / denom


@pytest.mark.parametrize(
    "adam_kwargs", [dict(), dict(betas=(0.3, 0.8), eps=1e-5), dict(weight_decay=0.1)], ids=["default", "betas", "decay"]
)
def test_compiled_adam_step_rounds_as_the_numpy_operations(adam_kwargs: dict) -> None:
    from sb3_ac_plus.one_step_ac.numpy_adam import NumpyAdam

    reference, reference_flat, reference_grad = _two_flat_groups(**adam_kwargs)
    optimizer, flat, grad = _two_flat_groups(**adam_kwargs)
    numpy_adam = NumpyAdam(optimizer)
    for group in reference.param_groups:
        param = group["params"][0]
        reference.state[param].update(step=th.tensor(0.0), exp_avg=th.zeros_like(param), exp_avg_sq=th.zeros_like(param))
    rng = np.random.default_rng(2)
    for step in range(40):
        if step == 20:  # the options change between steps (as a user's schedule may): the step follows them
            for group in (*reference.param_groups, *optimizer.param_groups):
                group.update(betas=(0.5, 0.9), eps=1e-6, weight_decay=0.05, lr=group["lr"] * 0.5)
        step_grad = th.as_tensor(rng.normal(scale=10.0 ** rng.integers(-4, 3), size=13).astype(np.float32))
        reference_grad.copy_(step_grad)
        grad.copy_(step_grad)
        _adam_as_numpy_operations(reference)
        assert numpy_adam.checked_step() if step % 2 else (numpy_adam.step() is None)
        assert th.equal(flat, reference_flat)  # bit for bit
    for param, reference_param in zip(optimizer.param_groups, reference.param_groups, strict=True):
        state, reference_state = optimizer.state[param["params"][0]], reference.state[reference_param["params"][0]]
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert th.equal(state[key], reference_state[key]), key


def test_checked_adam_step_refuses_a_non_finite_step_and_changes_nothing() -> None:
    from sb3_ac_plus.one_step_ac.flat_optimizer import FlatOptimizer

    optimizer, flat, grad = _two_flat_groups()
    flat_optimizer = FlatOptimizer.build(optimizer, flat, grad)
    assert flat_optimizer is not None and flat_optimizer._numpy_step is not None
    before = flat.clone()
    grad.fill_(1.0)
    grad[9] = math.inf  # in the second group only: the first group's finite step must not be applied either
    assert not flat_optimizer.step([1e-2, 3e-3], flat)
    assert th.equal(flat, before) and not optimizer.state and not flat_optimizer.twin.state  # no state, as before
    grad[9] = 1.0
    assert flat_optimizer.step([1e-2, 3e-3], flat)
    after_one = flat.clone()
    state = flat_optimizer.twin.state[flat_optimizer.twin.param_groups[0]["params"][0]]
    state_before = {key: value.clone() for key, value in state.items()}
    grad[2] = math.nan
    assert not flat_optimizer.step([1e-2, 3e-3], flat)
    assert th.equal(flat, after_one)
    for key, value in state_before.items():
        assert th.equal(state[key], value), key
    assert float(optimizer.state[optimizer.param_groups[0]["params"][0]]["step"]) == 1


@pytest.mark.parametrize(
    "adam_kwargs", [dict(amsgrad=True), dict(maximize=True), dict(weight_decay=0.1, decoupled_weight_decay=True)]
)
def test_numpy_adam_refuses_adam_variants(adam_kwargs: dict) -> None:
    from sb3_ac_plus.one_step_ac.flat_optimizer import FlatOptimizer
    from sb3_ac_plus.one_step_ac.numpy_adam import NumpyAdam, numpy_adam_supported

    optimizer, flat, grad = _two_flat_groups(**adam_kwargs)
    assert not numpy_adam_supported(optimizer)
    with pytest.raises(ValueError, match=r"plain th\.optim\.Adam"):
        NumpyAdam(optimizer)
    flat_optimizer = FlatOptimizer.build(optimizer, flat, grad)
    assert flat_optimizer is not None and flat_optimizer._numpy_step is None  # stepped by torch instead
    plain, flat, grad = _two_flat_groups()
    assert numpy_adam_supported(plain)
    assert FlatOptimizer.build(plain, flat, grad)._numpy_step is not None  # type: ignore[union-attr]
    assert not numpy_adam_supported(th.optim.AdamW([th.zeros(3, requires_grad=True)]))


def _optimizer_model(n_envs: int, fast: bool = True, **kwargs) -> OneStepAC:
    env = make_vec_env("Pendulum-v1", n_envs=n_envs, seed=1)
    kwargs = {"learning_rate": 1e-3, "ent_coef": 0.05, **kwargs}
    model = OneStepAC("MlpPolicy", env, update_rule="optimizer", trace_lambda=0.0, seed=5, **kwargs)
    model._use_fast_path = fast
    return model


def _same_params(a: OneStepAC, b: OneStepAC, atol: float = 1e-6) -> bool:
    return all(th.allclose(p, q, atol=atol) for p, q in zip(a._trained_params, b._trained_params, strict=True))


def test_each_env_makes_its_own_optimizer_step() -> None:
    model = _optimizer_model(3, combine_envs="each")
    model.learn(60, log_interval=None)
    step = next(iter(model.policy.optimizer.state.values()))["step"]
    assert float(step) == 60  # 20 VecEnv steps of 3 envs, one Adam step per env
    summed = _optimizer_model(3, combine_envs="sum")
    summed.learn(60, log_interval=None)
    assert float(next(iter(summed.policy.optimizer.state.values()))["step"]) == 20
    assert not _same_params(model, summed, atol=1e-4)
    sequential = _optimizer_model(3, combine_envs="sequential")
    sequential.learn(60, log_interval=None)
    assert float(next(iter(sequential.policy.optimizer.state.values()))["step"]) == 60
    assert not _same_params(model, sequential, atol=1e-4)  # each step's gradient at the parameters it finds


@pytest.mark.parametrize("fast", [True, False])
def test_each_with_one_env_is_the_summed_step(fast: bool) -> None:
    each, summed = _optimizer_model(1, fast, combine_envs="each"), _optimizer_model(1, fast)
    each.learn(100, log_interval=None)
    summed.learn(100, log_interval=None)
    assert _same_params(each, summed)


@pytest.mark.parametrize("fast", [True, False])
def test_each_with_plain_sgd_equals_one_step_on_the_summed_loss(fast: bool) -> None:
    """SGD's step is linear in the gradient: steps of each env's gradient, all taken at the parameters of the VecEnv
    step's start, add up to one step of their sum."""
    sgd = dict(policy_kwargs=dict(optimizer_class=th.optim.SGD))
    each = _optimizer_model(3, fast, combine_envs="each", **sgd)
    summed = _optimizer_model(3, fast, combine_envs="sum", **sgd)
    each.learn(90, log_interval=None)
    summed.learn(90, log_interval=None)
    assert _same_params(each, summed, atol=1e-5)


def test_each_trains_the_same_on_both_paths() -> None:
    models = [_optimizer_model(3, fast, combine_envs="each") for fast in (True, False)]
    for model in models:
        model.learn(150, log_interval=None)
    assert models[0]._backend.name == "numpy" and models[1]._backend.name == "torch"
    assert _same_params(*models, atol=1e-5)


ONE_ENV_ADAM_CASES = {
    "categorical": dict(_env="CartPole-v1"),
    "gaussian": dict(_env="Pendulum-v1"),
    # Adam's steps on gSDE's gradients part the paths by more than rounding after about 90 updates (see above)
    "gsde": dict(_env="Pendulum-v1", use_sde=True, sde_sample_freq=8, _steps=40),
    # MountainCarContinuous's zoo block: here the NumPy operations themselves part from torch by 1e-4 within 80 updates
    # (the kernel stays within 2e-7 of them), so the kernel is compared with the NumPy operations only
    "gsde-no-entropy-mcc": dict(
        _env="MountainCarContinuous-v0", use_sde=True, ent_coef=0.0, gamma=0.9999, _steps=40, _paths=("numpy",)
    ),
}


@pytest.mark.parametrize("case", list(ONE_ENV_ADAM_CASES))
def test_one_env_adam_update_is_one_compiled_call(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With one env, update_rule="optimizer" and Adam, the NumPy path's update is one compiled call (optimizer_rows, one row);
    it trains as the NumPy operations and as torch (autograd, torch's Adam), within float rounding, Adam's state
    included."""
    from sb3_ac_plus.one_step_ac import one_step_ac as one_step_ac_module
    from sb3_ac_plus.one_step_ac.flat_optimizer import FlatOptimizer

    kwargs = dict(ONE_ENV_ADAM_CASES[case])
    env_id = kwargs.pop("_env")
    n_steps = kwargs.pop("_steps", 60)
    compared = kwargs.pop("_paths", ("numpy", "torch"))
    kwargs = dict(dict(learning_rate=1e-3, critic_learning_rate=3e-3, ent_coef=0.05), **kwargs)
    calls: list[int] = []
    rows = one_step_ac_module.optimizer_rows

    def counted(*args):  # type: ignore[no-untyped-def]
        calls.append(1)
        return rows(*args)

    monkeypatch.setattr(one_step_ac_module, "optimizer_rows", counted)
    models = {}
    for path in ("kernel", "numpy", "torch"):
        with monkeypatch.context() as patch:
            if path == "numpy":
                patch.setattr(FlatOptimizer, "groups_are", lambda self, slices: False)
            model = OneStepAC(
                "MlpPolicy", make_vec_env(env_id, seed=1), update_rule="optimizer", trace_lambda=0.0, seed=5, **kwargs
            )
            model._use_fast_path = path != "torch"
            calls.clear()
            model.learn(n_steps, log_interval=None)
            model.learn(n_steps, log_interval=None, reset_num_timesteps=False)  # the state created, then linked again
            assert len(calls) == (2 * n_steps if path == "kernel" else 0)
        models[path] = model
    kernel = models["kernel"]
    assert float(kernel.policy.optimizer.state_dict()["state"][0]["step"]) == 2 * n_steps
    start = OneStepAC("MlpPolicy", make_vec_env(env_id, seed=1), update_rule="optimizer", trace_lambda=0.0, seed=5, **kwargs)
    assert float((kernel._flat_params - start._flat_params).abs().max()) > 1e-3  # it learned
    for other in compared:
        for a, b in zip(kernel._trained_params, models[other]._trained_params, strict=True):
            assert th.allclose(a, b, rtol=1e-4, atol=1e-5), (other, (a - b).abs().max())
        state_kernel, state_other = (m.policy.optimizer.state_dict()["state"] for m in (kernel, models[other]))
        assert state_kernel.keys() == state_other.keys()
        for index, entries in state_other.items():
            for key, value in entries.items():
                assert th.allclose(state_kernel[index][key], value, rtol=1e-3, atol=1e-6), (other, index, key)


@pytest.mark.parametrize(
    "group",
    [
        dict(lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
        dict(lr=3e-3, betas=(0.3, 0.8), eps=1e-5, weight_decay=0.01),
    ],
)
def test_compiled_step_scalars_are_torchs(group: dict) -> None:
    """Every Adam step of the NumPy backend (compiled or not) takes its per-step scalars from step_scalars; they must
    be the ones torch's single-tensor Adam computes in Python floats and rounds against a float32 tensor, bit for bit,
    at every step count."""
    from sb3_ac_plus.one_step_ac.numpy_adam import _step_scalars, step_scalars

    beta1, beta2 = group["betas"]
    hyper = np.array([group["lr"], beta1, beta2, group["eps"], group["weight_decay"]], dtype=np.float64)
    for step in [1.0, 2.0, 3.0, 10.0, 123.0, 4567.0, 1e6]:
        # torch: exp_avg.lerp_(grad, 1 - beta1) (lerp's weight as its kernel takes it), exp_avg_sq.mul_(beta2)
        # .addcmul_(grad, grad, value=1 - beta2), denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps,
        # param.addcdiv_(exp_avg, denom, value=-step_size), weight decay grad + weight_decay * param
        weight = 1.0 - beta1
        expected = (
            np.float32(weight if weight < 0.5 else 1.0 - weight),
            weight < 0.5,
            np.float32(beta2),
            np.float32(1.0 - beta2),
            np.float32(math.sqrt(1.0 - beta2**step)),
            np.float32(group["eps"]),
            np.float32(-group["lr"] / (1.0 - beta1**step)),
            np.float32(group["weight_decay"]),
            group["weight_decay"] != 0.0,
        )
        compiled, python = step_scalars(hyper, step), _step_scalars(group, step)
        assert len(compiled) == len(python) == len(expected)
        for a, b, c in zip(compiled, python, expected, strict=True):
            assert type(b) is type(c) and b == c and np.float32(a) == c, (step, a, b, c)


SEQUENTIAL_ADAM_CASES = {
    "categorical": dict(_env="CartPole-v1"),
    "gaussian": dict(_env="Pendulum-v1"),
    "gsde": dict(_env="Pendulum-v1", use_sde=True, sde_sample_freq=8, _steps=40),
}


@pytest.mark.parametrize("case", list(SEQUENTIAL_ADAM_CASES))
def test_sequential_adam_rows_are_compiled_calls(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With several envs, combine_envs="sequential" and NumPy's Adam, a VecEnv step's update is one compiled call
    (optimizer_rows) that takes one Adam step per row, in env order, each at the parameters the rows before it left;
    it trains as the NumPy operations and as torch, within float rounding."""
    from sb3_ac_plus.one_step_ac import one_step_ac as one_step_ac_module
    from sb3_ac_plus.one_step_ac.flat_optimizer import FlatOptimizer

    kwargs = dict(SEQUENTIAL_ADAM_CASES[case])
    env_id = kwargs.pop("_env")
    n_steps = kwargs.pop("_steps", 60)
    n_envs = 3
    kwargs = dict(learning_rate=1e-3, critic_learning_rate=3e-3, ent_coef=0.05, combine_envs="sequential", **kwargs)
    calls: list[int] = []
    rows = one_step_ac_module.optimizer_rows

    def counted(*args):  # type: ignore[no-untyped-def]
        calls.append(1)
        return rows(*args)

    monkeypatch.setattr(one_step_ac_module, "optimizer_rows", counted)

    def model_on(path: str) -> OneStepAC:
        with monkeypatch.context() as patch:
            if path == "numpy":
                patch.setattr(FlatOptimizer, "groups_are", lambda self, slices: False)
            env = make_vec_env(env_id, n_envs=n_envs, seed=1)
            model = OneStepAC("MlpPolicy", env, update_rule="optimizer", trace_lambda=0.0, seed=5, **kwargs)
            model._use_fast_path = path != "torch"
            calls.clear()
            model.learn(n_envs * n_steps, log_interval=None)
            assert len(calls) == (n_steps if path == "kernel" else 0)  # one call per VecEnv step
            return model

    models = {path: model_on(path) for path in ("kernel", "numpy", "torch")}
    kernel = models["kernel"]
    assert float(kernel.policy.optimizer.state_dict()["state"][0]["step"]) == n_envs * n_steps  # one step per row
    env = make_vec_env(env_id, n_envs=n_envs, seed=1)
    start = OneStepAC("MlpPolicy", env, update_rule="optimizer", trace_lambda=0.0, seed=5, **kwargs)
    assert float((kernel._flat_params - start._flat_params).abs().max()) > 1e-3  # it learned
    for other in ("numpy", "torch"):
        for a, b in zip(kernel._trained_params, models[other]._trained_params, strict=True):
            assert th.allclose(a, b, rtol=1e-4, atol=1e-5), (other, (a - b).abs().max())


def test_adam_step_rounds_the_same_when_first_compiled_inside_the_one_env_kernel(tmp_path) -> None:
    """numba compiles a kernel that sets no fastmath option with its caller's options: Adam's step, first compiled
    (and cached) as part of optimizer_row, must still round as the NumPy operations, bit for bit."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from sb3_ac_plus import OneStepAC
        OneStepAC("MlpPolicy", "Pendulum-v1", update_rule="optimizer", trace_lambda=0.0, seed=0).learn(2)
        import test_one_step_update as tests
        tests.test_compiled_adam_step_rounds_as_the_numpy_operations(dict(betas=(0.3, 0.8), eps=1e-5))
        """
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))  # an empty cache: everything is compiled in this order
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True)
