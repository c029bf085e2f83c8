"""combine_envs="sequential": the envs' transitions of a VecEnv step learned from one after the other."""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_ac_plus import OneStepAC
from tests.test_one_step_update import GAMMA, RecordingEnv, _params, _reference_one_step


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
        combine_envs="sequential",
        normalize_observations=False,
        normalize_rewards=False,
        seed=3,
        policy_kwargs=dict(net_arch=[16, 16], sparsity=0.5),
    )
    model._use_fast_path = fast
    before = _params(model)
    model.learn(2, log_interval=None)  # one VecEnv step, a transition of each env
    assert (model._backend.name == "numpy") == fast
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

    # "sum" takes both updates from the parameters before: another result.
    vec_env, _ = _two_recording_envs(continuous)
    summed = OneStepAC("MlpPolicy", vec_env, **{**_kwargs(model), "combine_envs": "sum"})
    summed._use_fast_path = fast
    summed.learn(2, log_interval=None)
    assert any(not th.allclose(a, b, atol=1e-5) for a, b in zip(_params(summed), after, strict=True))


def _kwargs(model: OneStepAC) -> dict:
    keys = ("learning_rate", "critic_learning_rate", "gamma", "trace_lambda", "ent_coef", "update_rule")
    return dict(
        {key: getattr(model, key) for key in keys},
        normalize_observations=False,
        normalize_rewards=False,
        seed=3,
        policy_kwargs=dict(net_arch=[16, 16], sparsity=0.5),
    )


@pytest.mark.parametrize("config", [dict(n_steps=3, trace_lambda=0.0), dict(update_rule="adaptive_obgd")])
def test_at_one_env_sequential_is_sum(config: dict) -> None:
    runs = []
    for combine_envs in ("sum", "sequential"):
        model = OneStepAC("MlpPolicy", make_vec_env("CartPole-v1", seed=1), combine_envs=combine_envs, seed=0, **config)
        model.learn(600, log_interval=None)
        runs.append(model._flat_params.clone())
    assert th.equal(runs[0], runs[1])


@pytest.mark.parametrize("combine_envs", ["sequential", "sum", "bounded_sum", "mean"])
@pytest.mark.parametrize(
    "config",
    [
        dict(),
        dict(update_rule="sgd", learning_rate=1e-3, critic_learning_rate=1e-3),
        dict(update_rule="adaptive_obgd"),
        dict(update_rule="adaptive_obgd", n_steps=4, trace_lambda=0.0),
    ],
)
def test_one_env_update_is_the_compiled_kernel_whatever_combine_envs(combine_envs: str, config: dict) -> None:
    """With one env every combine_envs is the same one-row update; the NumPy path computes it in the compiled kernel,
    the same update as the batched operations, rounded differently. With n-step returns, the steps with one due state
    (all but those ending an episode, where several are due)."""
    models = []
    for kernel in (True, False):
        model = OneStepAC("MlpPolicy", make_vec_env("CartPole-v1", seed=1), combine_envs=combine_envs, seed=0, **config)
        calls: list[int] = []
        kernel_call = model._sequential_kernel

        def counted(*args, _calls=calls, _kernel=kernel_call):  # type: ignore[no-untyped-def]
            _calls.append(1)
            return _kernel(*args)

        model._sequential_kernel = counted  # type: ignore[method-assign]
        if not kernel:
            model._kernel_computes_sequential = lambda backend: False  # type: ignore[method-assign]
        model.learn(300, log_interval=None)
        if not kernel:
            assert not calls
        elif "n_steps" in config:
            assert 200 < len(calls) < 300
        else:
            assert len(calls) == 300
        models.append(model)
    kernel_params, batched_params = (model._flat_params for model in models)
    assert th.allclose(kernel_params, batched_params, rtol=1e-4, atol=2e-5), (kernel_params - batched_params).abs().max()
    assert float((kernel_params - OneStepAC("MlpPolicy", "CartPole-v1", seed=0)._flat_params).abs().max()) > 1e-2


def _learned(env_id: str, n_envs: int, path: str, steps: int = 400, **config) -> OneStepAC:
    """A sequential model after ``steps``, with the compiled kernel, the row-by-row NumPy operations or torch."""
    model = OneStepAC("MlpPolicy", make_vec_env(env_id, n_envs=n_envs, seed=2), combine_envs="sequential", seed=0, **config)
    model._use_fast_path = path != "torch"
    if path == "rows":
        model._kernel_computes_sequential = lambda backend: False  # type: ignore[method-assign]
    model.learn(steps, log_interval=None)
    assert model._backend.name == ("torch" if path == "torch" else "numpy")
    return model


@pytest.mark.parametrize(
    "env_id, config",
    [
        ("CartPole-v1", dict()),
        ("CartPole-v1", dict(update_rule="sgd", learning_rate=1e-4, critic_learning_rate=1e-4)),
        ("CartPole-v1", dict(n_steps=3, trace_lambda=0.0)),
        ("CartPole-v1", dict(update_rule="adaptive_obgd")),
        ("CartPole-v1", dict(update_rule="adaptive_obgd", n_steps=4, trace_lambda=0.0)),
        ("Pendulum-v1", dict()),
        ("Pendulum-v1", dict(update_rule="adaptive_obgd")),
        ("Pendulum-v1", dict(policy_kwargs=dict(layer_norm=False, activation_fn=th.nn.Tanh))),
    ],
)
def test_compiled_kernel_equals_the_row_by_row_operations(env_id: str, config: dict) -> None:
    kernel = _learned(env_id, 3, "kernel", **config)
    rows = _learned(env_id, 3, "rows", **config)
    torch = _learned(env_id, 3, "torch", **config)
    assert th.allclose(kernel._flat_params, rows._flat_params, rtol=1e-4, atol=2e-5)
    assert th.allclose(kernel._flat_params, torch._flat_params, rtol=1e-4, atol=2e-5)
    if kernel._actor_traces is not None:
        assert th.allclose(kernel._actor_traces.traces, torch._actor_traces.traces, rtol=1e-4, atol=2e-5)
        assert th.allclose(kernel._critic_traces.traces, rows._critic_traces.traces, rtol=1e-4, atol=2e-5)
    if kernel._actor_moments is not None:
        assert kernel._actor_moments.count == rows._actor_moments.count == torch._actor_moments.count
        for other in (rows, torch):
            pairs = ((kernel._actor_moments, other._actor_moments), (kernel._critic_moments, other._critic_moments))
            for mine, theirs in pairs:
                assert th.allclose(mine.moments, theirs.moments, rtol=1e-3, atol=1e-12)
    # the parameters moved well beyond that tolerance
    assert float((kernel._flat_params - OneStepAC("MlpPolicy", env_id, seed=0)._flat_params).abs().max()) > 1e-2


ADAM = dict(update_rule="optimizer", trace_lambda=0.0, learning_rate=1e-3)


@pytest.mark.parametrize(
    "config",
    [
        dict(update_rule="adaptive_obgd", _env="Pendulum-v1", use_sde=True),
        dict(_env="Pendulum-v1", use_sde=True),
        ADAM,
        dict(ADAM, n_steps=3),
        dict(ADAM, policy_kwargs=dict(optimizer_class=th.optim.SGD)),
    ],
)
def test_row_by_row_update_is_the_same_on_numpy_and_torch(config: dict) -> None:
    config = dict(config)
    env_id = config.pop("_env", "CartPole-v1")
    numpy, torch = (_learned(env_id, 2, path, **config) for path in ("kernel", "torch"))
    assert not numpy._kernel_computes_sequential(numpy._backend)
    assert th.allclose(numpy._flat_params, torch._flat_params, rtol=1e-4, atol=2e-5)
    if numpy._actor_moments is not None:
        assert numpy._actor_moments.count == torch._actor_moments.count == 400  # one update per env-step
        assert th.allclose(numpy._actor_moments.moments, torch._actor_moments.moments, rtol=1e-3, atol=1e-12)


def test_traces_are_kept_per_env_and_reset_at_episode_ends() -> None:
    model = _learned("CartPole-v1", 2, "kernel", steps=2)
    traces = model._actor_traces.traces
    assert (traces.abs().sum(1) > 0).all()
    assert not th.allclose(traces[0], traces[1])
    ended = []
    model.learn(400, callback=lambda local, _: ended.append(local["dones"].copy()) or True, log_interval=None)
    assert np.concatenate(ended).any()


def test_learns_the_identity_env_with_several_envs() -> None:
    from stable_baselines3.common.envs import IdentityEnv
    from stable_baselines3.common.evaluation import evaluate_policy

    env = make_vec_env(lambda: IdentityEnv(4), n_envs=4, seed=0)
    model = OneStepAC("MlpPolicy", env, combine_envs="sequential", seed=0).learn(3000)
    mean_return, _ = evaluate_policy(model, make_vec_env(lambda: IdentityEnv(4), seed=1), n_eval_episodes=5)
    assert mean_return >= 90.0


@pytest.mark.parametrize("fast", [True, False])
def test_optimizer_steps_follow_each_other(fast: bool) -> None:
    """With SGD as the optimizer, each env's step is plain ``lr * delta * grad`` from where the previous one left."""
    config = dict(ADAM, ent_coef=0.0, policy_kwargs=dict(optimizer_class=th.optim.SGD))
    vec_env, envs = _two_recording_envs(continuous=False)
    kwargs = dict(gamma=GAMMA, normalize_observations=False, normalize_rewards=False, seed=3, learning_rate=0.5)
    model = OneStepAC("MlpPolicy", vec_env, **{**config, **kwargs, "combine_envs": "sequential"})
    model._use_fast_path = fast
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


@pytest.mark.parametrize("path", ["kernel", "rows", "optimizer"])
def test_logged_statistics_are_the_mean_over_the_rows(path: str, tmp_path) -> None:
    """With SGD (and the optimizer's rule) the logged step sizes are the set ones, whichever way the rows are computed."""
    import pandas as pd
    from stable_baselines3.common.logger import configure

    if path == "optimizer":
        config = dict(ADAM)
    else:
        config = dict(update_rule="sgd", learning_rate=1e-4, critic_learning_rate=2e-4)
    model = OneStepAC("MlpPolicy", make_vec_env("CartPole-v1", n_envs=3, seed=0), combine_envs="sequential", seed=0, **config)
    if path == "rows":
        model._kernel_computes_sequential = lambda backend: False  # type: ignore[method-assign]
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(60, log_interval=1)
    logged = pd.read_csv(tmp_path / "progress.csv")
    assert len(logged) == 20  # one log per VecEnv step
    assert logged["train/actor_step_size"].to_numpy() == pytest.approx(model.learning_rate)
    assert logged["train/critic_step_size"].to_numpy() == pytest.approx(model.critic_learning_rate or model.learning_rate)
    for name in ("train/td_error_abs", "train/critic_loss", "train/entropy"):
        values = logged[name].to_numpy()
        assert np.isfinite(values).all() and (values > 0).all()
