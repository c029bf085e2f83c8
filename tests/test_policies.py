"""The actor-critic policies: every shape under OneStepAC, A2C and PPO, saving, initialisation, the shared trunk's
update, the fast path's reach and the validation of policy_kwargs."""

import inspect
import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.envs import (
    FakeImageEnv,
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from sb3_ac_plus import (
    ConfigurableActorCriticPolicy,
    OneStepAC,
    SeparateActorCriticCnnPolicy,
    SeparateActorCriticPolicy,
    SeparateMultiInputActorCriticPolicy,
    SharedTrunkActorCriticCnnPolicy,
    SharedTrunkActorCriticPolicy,
    SharedTrunkMultiInputActorCriticPolicy,
    StreamingActorCriticCnnPolicy,
    StreamingActorCriticPolicy,
    StreamingMultiInputActorCriticPolicy,
)
from sb3_ac_plus.one_step_ac.fast import supports_kernels
from sb3_ac_plus.one_step_ac.policy_outputs import actor_outputs, critic_values
from sb3_ac_plus.one_step_ac.policy_aliases import POLICY_ALIASES
from sb3_ac_plus.policies import StateDependentStdGaussianDistribution

MLP_POLICIES = [SharedTrunkActorCriticPolicy, SeparateActorCriticPolicy, StreamingActorCriticPolicy]
ALGOS = {
    "OneStepAC": (OneStepAC, {}),
    "A2C": (A2C, {}),
    "PPO": (PPO, dict(n_steps=64, batch_size=32, n_epochs=2)),
}
GAMMA = 0.9


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # A2C and PPO use every core; at these tiny batch sizes a second thread only slows them down on a busy machine.
    n_threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(n_threads)


def _make(algo: str, policy, env, **kwargs):
    algo_class, algo_kwargs = ALGOS[algo]
    return algo_class(policy, env, seed=0, **algo_kwargs, **kwargs)


def _finite(model) -> bool:
    return all(th.isfinite(p).all() for p in model.policy.parameters())


@pytest.mark.parametrize("policy", MLP_POLICIES, ids=lambda p: p.__name__)
@pytest.mark.parametrize("algo", list(ALGOS))
@pytest.mark.parametrize(
    "env",
    [IdentityEnv(3), IdentityEnvBox(eps=0.5), IdentityEnvMultiDiscrete(2)],
    ids=["Discrete", "Box", "MultiDiscrete"],
)
def test_every_policy_runs_with_every_algorithm(policy, algo: str, env) -> None:
    model = _make(algo, policy, env).learn(300)
    assert model.num_timesteps >= 300
    assert _finite(model)
    action, _ = model.predict(env.observation_space.sample(), deterministic=True)
    assert env.action_space.contains(np.asarray(action).astype(env.action_space.dtype).reshape(env.action_space.shape))


@pytest.mark.parametrize("algo", list(ALGOS))
def test_state_dependent_std(algo: str) -> None:
    env = gym.make("Pendulum-v1")
    policy_kwargs = dict(net_arch=[16], std="state_dependent", log_std_init=-0.5)
    model = _make(algo, StreamingActorCriticPolicy, env, policy_kwargs=policy_kwargs)
    policy = model.policy
    assert type(policy.action_dist) is StateDependentStdGaussianDistribution
    assert not supports_kernels(policy, env.observation_space, th.device("cpu"))
    obs = th.randn(2, 3)
    std_before = policy.get_distribution(obs).distribution.stddev
    assert th.allclose(std_before, th.full_like(std_before, math.exp(-0.5)))  # starts state-independent
    model.learn(300)
    assert _finite(model)
    with th.no_grad():
        std_after = policy.get_distribution(obs).distribution.stddev
    assert not th.allclose(std_after[0], std_after[1])  # and learns to depend on the state
    if algo == "OneStepAC":
        assert model._engine.name == "reference"


@pytest.mark.parametrize(
    "alias, policy_class",
    [
        ("SharedCnnPolicy", SharedTrunkActorCriticCnnPolicy),
        ("SeparateCnnPolicy", SeparateActorCriticCnnPolicy),
        ("StreamingCnnPolicy", StreamingActorCriticCnnPolicy),
        ("SharedMultiInputPolicy", SharedTrunkMultiInputActorCriticPolicy),
        ("SeparateMultiInputPolicy", SeparateMultiInputActorCriticPolicy),
        ("StreamingMultiInputPolicy", StreamingMultiInputActorCriticPolicy),
    ],
)
def test_image_and_dict_observation_variants(alias: str, policy_class) -> None:
    if "Cnn" in alias:
        env = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True)
        policy_kwargs = dict(features_extractor_kwargs=dict(features_dim=16))
    else:
        env = SimpleMultiObsEnv(random_start=True)
        policy_kwargs = {}
    assert POLICY_ALIASES[alias] is policy_class
    OneStepAC(alias, env, seed=0, policy_kwargs=policy_kwargs).learn(40)
    model = PPO(policy_class, env, seed=0, n_steps=32, batch_size=16, n_epochs=1, policy_kwargs=policy_kwargs).learn(32)
    assert _finite(model)


def test_one_step_ac_aliases() -> None:
    assert POLICY_ALIASES["MlpPolicy"] is StreamingActorCriticPolicy
    assert POLICY_ALIASES["StreamingMlpPolicy"] is StreamingActorCriticPolicy
    assert POLICY_ALIASES["SharedMlpPolicy"] is SharedTrunkActorCriticPolicy
    assert POLICY_ALIASES["SeparateMlpPolicy"] is SeparateActorCriticPolicy
    assert isinstance(OneStepAC("SharedMlpPolicy", "CartPole-v1").policy, SharedTrunkActorCriticPolicy)


@pytest.mark.parametrize("policy_class", MLP_POLICIES, ids=lambda p: p.__name__)
@pytest.mark.parametrize("non_default", [False, True])
def test_policy_alone_round_trip(tmp_path, policy_class, non_default: bool) -> None:
    policy_kwargs = {}
    if non_default:
        policy_kwargs = dict(
            net_arch=dict(shared=[8], pi=[6], vf=[5]),
            activation_fn=nn.ELU,
            layer_norm=True,
            init="sparse",
            sparsity=0.3,
            std="state_dependent",
            log_std_init=-0.5,
            share_features_extractor=False,
            normalize_images=False,
            optimizer_class=th.optim.SGD,
            optimizer_kwargs=dict(momentum=0.5),
        )
    model = PPO(policy_class, "Pendulum-v1", seed=0, n_steps=64, batch_size=32, n_epochs=1, policy_kwargs=policy_kwargs)
    model.learn(64)
    model.policy.save(tmp_path / "policy.pth")
    loaded = policy_class.load(tmp_path / "policy.pth")
    assert type(loaded) is policy_class

    saved, again = model.policy._get_constructor_parameters(), loaded._get_constructor_parameters()
    constructor = set(inspect.signature(ConfigurableActorCriticPolicy.__init__).parameters) - {"self", "unknown_kwargs"}
    assert constructor <= set(saved)
    saved.pop("lr_schedule"), again.pop("lr_schedule")
    assert saved == again
    for key, value in policy_kwargs.items():
        assert saved[key] == value
    for (name, a), (_, b) in zip(model.policy.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert th.equal(a, b), name
    obs = th.randn(5, 3)
    with th.no_grad():
        assert th.equal(loaded.predict_values(obs), model.policy.predict_values(obs))
        assert th.equal(loaded.get_distribution(obs).distribution.mean, model.policy.get_distribution(obs).distribution.mean)


@pytest.mark.parametrize("alias", ["SharedMlpPolicy", "SeparateMlpPolicy", "StreamingMlpPolicy"])
def test_one_step_ac_model_round_trip(tmp_path, alias: str) -> None:
    policy_kwargs = dict(std="state_dependent") if alias == "SharedMlpPolicy" else {}
    model = OneStepAC(alias, "Pendulum-v1", seed=0, policy_kwargs=policy_kwargs).learn(100)
    model.save(tmp_path / "model.zip")
    loaded = OneStepAC.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    assert type(loaded.policy) is POLICY_ALIASES[alias]
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    loaded.learn(100, reset_num_timesteps=False)
    assert _finite(loaded)


def test_separate_policy_is_sb3_mlp_policy() -> None:
    runs = []
    for policy in (SeparateActorCriticPolicy, "MlpPolicy"):
        model = PPO(policy, "CartPole-v1", seed=0, n_steps=64, batch_size=32, n_epochs=2)
        initial = [p.detach().clone() for p in model.policy.parameters()]
        runs.append((initial, list(model.learn(128).policy.parameters())))
    (ours_initial, ours_trained), (sb3_initial, sb3_trained) = runs
    for a, b in zip(ours_initial, sb3_initial, strict=True):
        assert th.equal(a, b)
    for a, b in zip(ours_trained, sb3_trained, strict=True):
        assert th.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9])
def test_sparse_init_gives_the_requested_sparsity(sparsity: float) -> None:
    policy_kwargs = dict(net_arch=dict(shared=[20], pi=[30], vf=[10]), init="sparse", sparsity=sparsity)
    policy = OneStepAC(SharedTrunkActorCriticPolicy, "Pendulum-v1", policy_kwargs=policy_kwargs).policy
    layers = [m for m in policy.modules() if isinstance(m, nn.Linear)]
    assert len(layers) == 5  # trunk, actor, critic, action head, value head
    for layer in layers:
        fan_in = layer.weight.shape[1]
        zeros_per_unit = (layer.weight == 0).sum(dim=1)
        assert th.all(zeros_per_unit == min(math.ceil(sparsity * fan_in), fan_in - 1)), (fan_in, zeros_per_unit)
        assert th.count_nonzero(layer.bias) == 0
    assert th.count_nonzero(policy.log_std) == 0


def test_orthogonal_and_default_init_are_dense() -> None:
    for init in ("orthogonal", "default"):
        policy = OneStepAC(SeparateActorCriticPolicy, "CartPole-v1", policy_kwargs=dict(init=init)).policy
        assert all(th.count_nonzero(m.weight) == m.weight.numel() for m in policy.modules() if isinstance(m, nn.Linear))


def test_shared_trunk_receives_gradient_from_both_heads() -> None:
    env = gym.make("CartPole-v1")
    policy = OneStepAC(SharedTrunkActorCriticPolicy, env, policy_kwargs=dict(net_arch=dict(shared=[8]))).policy
    trunk = list(policy.mlp_extractor.shared_net.parameters())
    obs = th.randn(4, 4)
    log_prob = actor_outputs(policy, obs).log_prob.sum()
    for grads in (th.autograd.grad(log_prob, trunk), th.autograd.grad(critic_values(policy, obs).sum(), trunk)):
        assert all(th.count_nonzero(g) > 0 for g in grads)


class _Recorder(gym.Wrapper):
    """Records the observations, actions and rewards of the env it wraps."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observations: list[np.ndarray] = []
        self.actions: list = []
        self.rewards: list[float] = []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.observations.append(obs)
        return obs, info

    def step(self, action):
        self.actions.append(np.array(action))
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.observations.append(obs)
        self.rewards.append(float(reward))
        return obs, reward, terminated, truncated, info


def _shared_trunk_model(env: gym.Env, **kwargs) -> OneStepAC:
    params = dict(
        gamma=GAMMA,
        trace_lambda=0.0,
        ent_coef=0.0,
        update_rule="sgd",
        normalize_observations=False,
        normalize_rewards=False,
        seed=3,
        policy_kwargs=dict(net_arch=dict(shared=[16], pi=[8])),
    )
    params.update(kwargs)
    return OneStepAC(SharedTrunkActorCriticPolicy, DummyVecEnv([lambda: env]), **params)


def _expected_update(model: OneStepAC, before: list[th.Tensor], env: _Recorder, actor_lr: float, critic_lr: float, shared_lr):
    """
    Reference of one update from the parameters ``before``: ``actor_lr * delta * grad log pi`` on the actor's parameters
    plus ``critic_lr * delta * grad V`` on the critic's; parameters in both get both, their actor part at ``shared_lr``.
    """
    policy = model.policy
    with th.no_grad():
        for p, value in zip(model._split.trained, before, strict=True):
            p.copy_(value)
    obs = th.as_tensor(env.observations[0][None])
    value = critic_values(policy, obs)[0]
    with th.no_grad():
        next_value = critic_values(policy, th.as_tensor(env.observations[1][None]))[0]
    delta = (env.rewards[0] + GAMMA * next_value - value).detach()
    log_prob = actor_outputs(policy, obs, th.as_tensor(env.actions[0][None])).log_prob[0]
    params = model._split.trained
    actor_grads = th.autograd.grad(log_prob, params, allow_unused=True)
    critic_grads = th.autograd.grad(value, params, allow_unused=True)
    expected = []
    for p, g_actor, g_critic in zip(params, actor_grads, critic_grads, strict=True):
        update = th.zeros_like(p)
        if g_actor is not None:
            update += (shared_lr if g_critic is not None else actor_lr) * delta * g_actor
        if g_critic is not None:
            update += critic_lr * delta * g_critic
        expected.append(p.detach() + update)
    return expected, float(delta)


@pytest.mark.parametrize("actor_lr, critic_lr", [(0.05, 0.2), (1e-12, 0.2), (0.05, 1e-12)], ids=["both", "critic", "actor"])
def test_one_step_ac_updates_the_shared_trunk_with_both_heads(actor_lr: float, critic_lr: float) -> None:
    env = _Recorder(gym.make("CartPole-v1"))
    model = _shared_trunk_model(env, learning_rate=actor_lr, critic_learning_rate=critic_lr)
    trunk_ids = {id(p) for p in model.policy.mlp_extractor.shared_net.parameters()}
    assert trunk_ids <= {id(p) for p in model._split.actor}
    assert trunk_ids <= {id(p) for p in model._split.critic}
    before = [p.detach().clone() for p in model._split.trained]
    model.learn(1, log_interval=None)
    assert model._engine.name == "reference"
    after = [p.detach().clone() for p in model._split.trained]
    expected, delta = _expected_update(model, before, env, actor_lr, critic_lr, shared_lr=actor_lr)
    assert abs(delta) > 1e-3
    for got, want in zip(after, expected, strict=True):
        assert th.allclose(got, want, atol=1e-7), (got - want).abs().max()
    for p, b, a in zip(model._split.trained, before, after, strict=True):
        if id(p) in trunk_ids:  # the trunk moves whichever head has a step size
            assert (a - b).abs().max() > 1e-6


def test_one_step_ac_optimizer_rule_puts_the_trunk_in_the_critic_group() -> None:
    env = _Recorder(gym.make("CartPole-v1"))
    policy_kwargs = dict(net_arch=dict(shared=[16], pi=[8]), optimizer_class=th.optim.SGD)
    model = _shared_trunk_model(
        env, update_rule="optimizer", learning_rate=0.05, critic_learning_rate=0.2, policy_kwargs=policy_kwargs
    )
    trunk_ids = {id(p) for p in model.policy.mlp_extractor.shared_net.parameters()}
    actor_group, critic_group = model.policy.optimizer.param_groups
    assert trunk_ids <= {id(p) for p in critic_group["params"]}
    assert not trunk_ids & {id(p) for p in actor_group["params"]}
    before = [p.detach().clone() for p in model._split.trained]
    model.learn(1, log_interval=None)
    after = [p.detach().clone() for p in model._split.trained]
    expected, _ = _expected_update(model, before, env, 0.05, 0.2, shared_lr=0.2)
    for got, want in zip(after, expected, strict=True):
        assert th.allclose(got, want, atol=1e-7), (got - want).abs().max()


@pytest.mark.parametrize(
    "policy_class, policy_kwargs, fast_discrete, fast_box",
    [
        (StreamingActorCriticPolicy, {}, True, True),
        (SeparateActorCriticPolicy, {}, True, True),
        (SharedTrunkActorCriticPolicy, {}, False, False),
        (StreamingActorCriticPolicy, dict(net_arch=dict(shared=[8], pi=[8], vf=[8])), False, False),
        (StreamingActorCriticPolicy, dict(std="state_dependent"), True, False),  # std only matters for Box actions
        (StreamingActorCriticPolicy, dict(activation_fn=nn.ELU), False, False),
    ],
    ids=["streaming", "separate", "shared", "streaming-trunk", "state-dependent-std", "elu"],
)
def test_fast_path_covers_only_what_it_computes(policy_class, policy_kwargs, fast_discrete: bool, fast_box: bool) -> None:
    for env_id, fast in (("CartPole-v1", fast_discrete), ("Pendulum-v1", fast_box)):
        model = OneStepAC(policy_class, env_id, seed=0, policy_kwargs=policy_kwargs)
        assert supports_kernels(model.policy, model.observation_space, model.device) == fast
        model.learn(2, log_interval=None)
        assert (model._engine.name == "kernels") == fast


def test_separate_policy_fast_and_torch_paths_train_the_same() -> None:
    models = []
    for fast in (True, False):
        model = OneStepAC("SeparateMlpPolicy", "Pendulum-v1", seed=5)
        model._use_kernels = fast
        model.learn(200, log_interval=None)
        assert (model._engine.name == "kernels") == fast
        models.append(model)
    for a, b in zip(models[0]._split.trained, models[1]._split.trained, strict=True):
        assert th.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    "policy_kwargs, match",
    [
        (dict(net_arch=[64], foo=1), r"unknown key\(s\) \['foo'\].*allowed keys: net_arch, activation_fn"),
        (dict(ortho_init=False), "ortho_init.*init='orthogonal'"),
        (dict(net_arch=[64, -1]), "net_arch"),
        (dict(net_arch=dict(shared=[0])), "net_arch"),
        (dict(net_arch=dict(pi=[8], qf=[8])), "net_arch.*'qf'"),
        (dict(net_arch=dict(pi=[8.5])), "net_arch"),
        (dict(sparsity=1.0), r"sparsity.*\[0, 1\)"),
        (dict(sparsity=-0.1), "sparsity"),
        (dict(init="xavier"), "init.*'orthogonal', 'sparse', 'default'"),
        (dict(std="softplus"), "std.*'state_independent', 'state_dependent'"),
        (dict(activation_fn=nn.ReLU()), "activation_fn"),
        (dict(layer_norm="yes"), "layer_norm"),
    ],
)
@pytest.mark.parametrize("policy_class", MLP_POLICIES, ids=lambda p: p.__name__)
def test_invalid_policy_kwargs_name_the_key(policy_kwargs, match: str, policy_class) -> None:
    with pytest.raises(ValueError, match=match):
        PPO(policy_class, "CartPole-v1", policy_kwargs=policy_kwargs)


@pytest.mark.parametrize("algo", ["OneStepAC", "A2C"])
def test_invalid_policy_kwargs_through_every_algorithm(algo: str) -> None:
    with pytest.raises(ValueError, match="'foo'"):
        _make(algo, SharedTrunkActorCriticPolicy, "CartPole-v1", policy_kwargs=dict(foo=1))


def test_state_dependent_std_refuses_gsde() -> None:
    with pytest.raises(ValueError, match=r"std.*use_sde"):
        A2C(SeparateActorCriticPolicy, "Pendulum-v1", use_sde=True, policy_kwargs=dict(std="state_dependent"))
