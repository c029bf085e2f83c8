"""Validation of OneStepAC's hyperparameters, spaces and policy modules: a clear ValueError at construction."""

import math

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

UPDATE_RULES = ("obgd", "adaptive_obgd", "sgd", "intentional", "optimizer")
INTENTIONAL_ETA_PER_ACTION = 0.005
"""The intentional rule's default actor eta for each action dimension (each term of the policy's log-probability)."""
INTENTIONAL_CRITIC_ETA = 0.5
"""The intentional rule's default critic eta: each step moves the value by half the (clipped) TD error."""

_SUPPORTED_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_SUPPORTED_OBSERVATION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Dict)


def check_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    if not isinstance(action_space, _SUPPORTED_ACTION_SPACES):
        allowed = ", ".join(space.__name__ for space in _SUPPORTED_ACTION_SPACES)
        raise ValueError(f"env: OneStepAC does not support the action space {action_space}; allowed: {allowed}")
    if not isinstance(observation_space, _SUPPORTED_OBSERVATION_SPACES):
        allowed = ", ".join(space.__name__ for space in _SUPPORTED_OBSERVATION_SPACES)
        raise ValueError(f"env: OneStepAC does not support the observation space {observation_space}; allowed: {allowed}")


def _is_real(value: object) -> bool:
    """Whether ``value`` is a real number (an int or a float, NumPy's included), not a bool or a string."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_step_size(name: str, value: float | Schedule | None, allow_none: bool = False) -> None:
    if value is None:
        if not allow_none:
            raise ValueError(f"{name} must be a positive float or a schedule, got None")
        return
    start = value(1.0) if callable(value) else value
    if not _is_real(start) or not math.isfinite(start) or start <= 0:
        raise ValueError(f"{name} must be a positive finite float (or a schedule giving one), got {start!r}")


def action_dimensions(action_space: spaces.Space) -> int:
    """The number of terms of the policy's log-probability: a Box's entries, a MultiDiscrete's or MultiBinary's
    entries, 1 for Discrete."""
    if isinstance(action_space, spaces.Discrete):
        return 1
    if isinstance(action_space, spaces.MultiDiscrete):
        return int(np.asarray(action_space.nvec).size)
    return int(np.prod(action_space.shape or ()))


def default_step_sizes(
    update_rule: str,
    learning_rate: float | Schedule | None,
    critic_learning_rate: float | Schedule | None,
    action_space: spaces.Space | None,
) -> tuple[float | Schedule, float | Schedule | None]:
    """
    The step sizes given, with the update rule's defaults in place of None: for ``"intentional"`` the actor's eta
    :data:`INTENTIONAL_ETA_PER_ACTION` times the action dimensions and the critic's :data:`INTENTIONAL_CRITIC_ETA`;
    for the other rules 1.0, with the critic following ``learning_rate``.
    """
    if update_rule != "intentional":
        return 1.0 if learning_rate is None else learning_rate, critic_learning_rate
    n_actions = 1 if action_space is None else action_dimensions(action_space)
    return (
        INTENTIONAL_ETA_PER_ACTION * n_actions if learning_rate is None else learning_rate,
        INTENTIONAL_CRITIC_ETA if critic_learning_rate is None else critic_learning_rate,
    )


def check_hyperparameters(
    learning_rate: float | Schedule | None,
    critic_learning_rate: float | Schedule | None,
    n_steps: int,
    gamma: float,
    trace_lambda: float,
    ent_coef: float,
    update_rule: str,
    actor_kappa: float,
    critic_kappa: float,
    sde_sample_freq: int,
    noise_beta: float,
    use_sde: bool,
    clip_obs: float,
) -> None:
    """Raise a ValueError naming the first invalid hyperparameter and what is allowed."""
    _check_step_size("learning_rate", learning_rate, allow_none=True)
    _check_step_size("critic_learning_rate", critic_learning_rate, allow_none=True)
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    for name, value in (("gamma", gamma), ("trace_lambda", trace_lambda)):
        if not _is_real(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a float in [0, 1], got {value!r}")
    if not (_is_real(ent_coef) and math.isfinite(ent_coef) and ent_coef >= 0.0):
        raise ValueError(f"ent_coef must be a finite float >= 0, got {ent_coef!r}")
    if not isinstance(use_sde, (bool, np.bool_)):
        raise ValueError(f"use_sde must be True or False, got {use_sde!r}")
    if update_rule not in UPDATE_RULES:
        raise ValueError(f"update_rule must be one of {UPDATE_RULES}, got {update_rule!r}")
    is_int = isinstance(sde_sample_freq, (int, np.integer)) and not isinstance(sde_sample_freq, bool)
    if not is_int or not (sde_sample_freq == -1 or sde_sample_freq >= 1):
        raise ValueError(f"sde_sample_freq must be an integer >= 1, or -1 (only at episode starts), got {sde_sample_freq!r}")
    if not _is_real(noise_beta) or not (math.isfinite(noise_beta) and noise_beta >= 0.0):
        raise ValueError(f"noise_beta must be a finite float >= 0 (0 white, 1 pink, 2 red noise), got {noise_beta!r}")
    if noise_beta > 0.0 and use_sde:
        raise ValueError(f"noise_beta={noise_beta} with use_sde=True: choose one kind of correlated exploration")
    for name, value in (("actor_kappa", actor_kappa), ("critic_kappa", critic_kappa), ("clip_obs", clip_obs)):
        if not (_is_real(value) and math.isfinite(value) and value > 0.0):
            raise ValueError(f"{name} must be a positive finite float, got {value!r}")
    if n_steps > 1 and trace_lambda > 0.0:
        raise ValueError(
            f"n_steps={n_steps} with trace_lambda={trace_lambda}: k-step returns and eligibility traces do not combine; "
            "use n_steps=1 with traces, or trace_lambda=0 with n_steps > 1"
        )
    if update_rule == "intentional" and gamma * trace_lambda >= 1.0:
        raise ValueError(
            f"update_rule='intentional' needs gamma * trace_lambda < 1 (its gradient-norm normaliser averages over "
            f"1 / (1 - gamma * trace_lambda) steps), got gamma={gamma}, trace_lambda={trace_lambda}"
        )
    if update_rule == "optimizer" and trace_lambda > 0.0:
        raise ValueError(
            f"update_rule='optimizer' needs trace_lambda=0 (a torch optimizer has no eligibility traces), got {trace_lambda}"
        )


def check_online_modules(policy: nn.Module) -> None:
    """
    Refuse modules that cannot learn from one sample at a time: BatchNorm's batch statistics are undefined (or, at
    batch size 1, zero variance) for an online learner.
    """
    for name, module in policy.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise ValueError(
                f"policy: OneStepAC cannot train the {type(module).__name__} module '{name}': an online learner updates "
                "from one sample per env at a time, where batch statistics are meaningless; use LayerNorm instead "
                "(nn.LayerNorm in a features extractor, or policy_kwargs=dict(layer_norm=True) for the MLPs)"
            )


# Attributes that only one algorithm saves, to name the algorithm a model file that is not OneStepAC's comes from.
_SAVED_ONLY_BY = (
    ("clip_range", "PPO (or sb3-contrib's RecurrentPPO or MaskablePPO)"),
    ("cg_max_steps", "sb3-contrib's TRPO"),
    ("target_entropy", "SAC (or sb3-contrib's TQC or CrossQ)"),
    ("target_policy_noise", "TD3"),
    ("exploration_fraction", "DQN (or sb3-contrib's QR-DQN)"),
    ("n_sampled_goal", "HER"),
    ("normalize_advantage", "A2C"),  # PPO's too, found above by its clip_range
)


def saved_by(data: dict) -> str:
    """:return: why a model file's saved ``data`` is not a OneStepAC model of this version, naming who saved it"""
    for key, algorithm in _SAVED_ONLY_BY:
        if key in data:
            return f"this file holds a {algorithm} model, not a OneStepAC one: load it with that algorithm's load()"
    if "_save_format" in data:
        return (
            f"this model was saved by another version of sb3-ac-plus (save format {data['_save_format']!r}, this "
            "version reads 3) and cannot be loaded; train it again"
        )
    policy = data.get("policy_class")
    name = getattr(policy, "__qualname__", policy)
    return (
        f"this file does not hold a OneStepAC model (its policy class is {name!r}): load it with the algorithm that saved it"
    )
