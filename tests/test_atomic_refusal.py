"""A refused update changes nothing: parameters, traces, normalisers, n-step windows and counters stay as they were."""

import copy
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_ac_plus import NonFiniteError, OneStepAC


class ScaledReward(gym.RewardWrapper):
    """Rewards times ``scale`` (1 until a test raises it)."""

    scale = 1.0

    def reward(self, reward: SupportsFloat) -> float:
        return float(reward) * self.scale


# (update rule, extra hyperparameters, whether the compiled kernels compute it)
CASES = {
    "obgd-fast": ("obgd", dict(), True),
    "obgd-reference-2-envs": ("obgd", dict(_n_envs=2), False),
    "sgd-fast": ("sgd", dict(learning_rate=0.01), True),
    "obgd-fast-3-envs": ("obgd", dict(_n_envs=3), True),
    "obgd-reference-3-envs": ("obgd", dict(_n_envs=3), False),
    "adaptive-obgd-fast-3-envs": ("adaptive_obgd", dict(_n_envs=3), True),
    "adaptive-obgd-reference-3-envs": ("adaptive_obgd", dict(_n_envs=3), False),
    "sgd-n-step-windows-fast-2-envs": ("sgd", dict(learning_rate=0.01, n_steps=3, trace_lambda=0.0, _n_envs=2), True),
    "sgd-reference": ("sgd", dict(learning_rate=0.01), False),
    "sgd-n-step-windows": ("sgd", dict(learning_rate=0.01, n_steps=3, trace_lambda=0.0), False),
    "optimizer-sgd": ("optimizer", dict(learning_rate=1e-3, policy_kwargs=dict(optimizer_class=th.optim.SGD)), False),
    "optimizer-adam": ("optimizer", dict(learning_rate=1e-3), False),
    "optimizer-adam-fast": ("optimizer", dict(learning_rate=1e-3), True),
    "optimizer-adam-fast-3-envs": ("optimizer", dict(learning_rate=1e-3, _n_envs=3), True),
    "optimizer-adam-reference-3-envs": ("optimizer", dict(learning_rate=1e-3, _n_envs=3), False),
}


def _state(model: OneStepAC) -> dict[str, Any]:
    """Everything a step may change, copied."""
    state = {
        "policy": {key: value.clone() for key, value in model.policy.state_dict().items()},
        "num_timesteps": model.num_timesteps,
        "n_updates": model._n_updates,
        "last_obs": np.array(model._last_obs),
        "reward_scaler": None
        if model._state.reward_scaler is None
        else copy.deepcopy({**vars(model._state.reward_scaler), "stats": vars(model._state.reward_scaler.stats)}),
        "windows": None
        if model._state.windows is None
        else [[entry[2] for entry in window] for window in model._state.windows.windows],
    }
    if model._state.actor_traces is not None:
        state["traces"] = (model._state.actor_traces.clone(), model._state.critic_traces.clone())
    if model._state.actor_moments is not None:
        moments = (model._state.actor_moments, model._state.critic_moments)
        state["moments"] = [(m.clone(), model._state.moments_count) for m in moments]
    if model.update_rule == "optimizer":
        state["optimizer"] = copy.deepcopy(model.policy.optimizer.state_dict()["state"])
    return state


def _assert_same(before: Any, after: Any) -> None:
    if isinstance(before, dict):
        assert before.keys() == after.keys()
        for key in before:
            _assert_same(before[key], after[key])
    elif isinstance(before, (list, tuple)):
        assert len(before) == len(after)
        for a, b in zip(before, after, strict=True):
            _assert_same(a, b)
    elif isinstance(before, th.Tensor):
        assert th.equal(before, after)
    elif isinstance(before, np.ndarray):
        assert np.array_equal(before, after)
    else:
        assert before == after


@pytest.mark.parametrize("part", ["actor", "critic"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_refused_update_leaves_the_model_as_after_the_last_completed_step(case: str, part: str) -> None:
    rule, kwargs, fast = CASES[case]
    kwargs = dict(kwargs)
    env = make_vec_env("CartPole-v1", n_envs=kwargs.pop("_n_envs", 1), seed=0, wrapper_class=ScaledReward)
    if rule == "optimizer":
        kwargs.update(trace_lambda=0.0, normalize_rewards=False)
    model = OneStepAC("MlpPolicy", env, update_rule=rule, seed=0, **kwargs)
    model._use_kernels = fast
    model.learn(300, log_interval=None)
    assert (model._engine.name == "kernels") == fast  # the intended update path
    assert model._n_updates > 0
    before = _state(model)

    # A step large enough to overflow float32 on one part only: a huge step size (ObGD's bound switched off by a tiny
    # kappa), or for a torch optimizer (which takes no step size beyond float32's range) huge rewards.
    if rule == "optimizer":
        env.set_attr("scale", 1e35)
    huge = 1e4 if rule == "optimizer" else 1e37
    if part == "actor":
        model.lr_schedule = lambda _: huge
        model.actor_kappa = 1e-60
    else:
        model.critic_lr_schedule = lambda _: huge
        model.critic_kappa = 1e-60
    snapshots = [before]

    def after_each_step(_locals: dict, _globals: dict) -> bool:
        snapshots.append(_state(model))
        return True

    with pytest.raises(NonFiniteError, match="not applied"):
        model.learn(300, callback=after_each_step, log_interval=None, reset_num_timesteps=False)

    _assert_same(snapshots[-1], _state(model))
    assert th.isfinite(model._flat_params).all()
