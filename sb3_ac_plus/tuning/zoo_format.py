"""Hyperparameters in the rl-baselines3-zoo YAML format, both ways.

A block looks like::

    CartPole-v1:
      n_envs: 1
      n_timesteps: !!float 12000
      policy: 'MlpPolicy'
      learning_rate: 0.5
      policy_kwargs: "dict(net_arch=[64, 64], activation_fn=nn.Tanh)"

``policy_kwargs`` is a string of Python code in the zoo. It is read with the package's safe parser
(:mod:`sb3_ac_plus.zoo.policy_kwargs`, :mod:`ast`, never ``eval``): only ``dict(...)`` calls, literals and the class
names listed in :data:`SAFE_NAMES` are accepted. :mod:`sb3_ac_plus.zoo` also builds a model and its env from a
whole zoo file, with every key checked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sb3_ac_plus.zoo.policy_kwargs import SAFE_NAMES, format_policy_kwargs, parse_policy_kwargs
from sb3_ac_plus.tuning.algorithms import get_algorithm_class

__all__ = [
    "SAFE_NAMES",
    "ZooHyperparameters",
    "format_policy_kwargs",
    "format_zoo_block",
    "load_hyperparameters",
    "make_model",
    "parse_policy_kwargs",
    "parse_zoo_yaml",
    "to_yaml_ready",
]

if TYPE_CHECKING:
    import gymnasium as gym
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecEnv

# Keys of a zoo block that configure the experiment rather than the algorithm's constructor.
ZOO_EXPERIMENT_KEYS = (
    "n_envs",
    "n_timesteps",
    "policy",
    "normalize",
    "normalize_kwargs",
    "env_wrapper",
    "vec_env_wrapper",
    "frame_stack",
    "callback",
    "env_kwargs",
)


def to_yaml_ready(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Constructor kwargs with ``policy_kwargs`` as a zoo string, so they can be stored as JSON or written as YAML.

    :param hyperparameters: constructor kwargs
    :return: a copy where every value is a literal
    """
    ready = dict(hyperparameters)
    if "policy_kwargs" in ready and not isinstance(ready["policy_kwargs"], str):
        ready["policy_kwargs"] = format_policy_kwargs(ready["policy_kwargs"])
    return ready


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        text = repr(value)
        # YAML 1.1 (PyYAML) reads "1e-05" as a string: a float needs a dot in its mantissa
        mantissa, _, exponent = text.partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        return mantissa + (f"e{exponent}" if exponent else "")
    dumped = yaml.safe_dump(value, default_flow_style=True, width=math.inf)  # type: ignore[call-overload]
    return dumped.removesuffix("\n").removesuffix("\n...").strip()


def format_zoo_block(
    env_id: str,
    hyperparameters: dict[str, Any],
    n_timesteps: int,
    n_envs: int = 1,
    comments: list[str] | None = None,
) -> str:
    """One env's block of a zoo hyperparameter file.

    :param env_id: the Gymnasium id, the block's key
    :param hyperparameters: constructor kwargs, ``policy`` included or defaulting to ``"MlpPolicy"``
    :param n_timesteps: training budget written as ``n_timesteps``
    :param n_envs: number of environments written as ``n_envs``
    :param comments: lines written as YAML comments above the block
    :return: the YAML text, ending with a newline
    """
    ready = to_yaml_ready(hyperparameters)
    policy = ready.pop("policy", "MlpPolicy")
    policy_kwargs = ready.pop("policy_kwargs", None)
    n_envs = ready.pop("n_envs", n_envs)
    lines = [f"# {comment}" for comment in comments or []]
    lines.append(f"{env_id}:")
    lines.append(f"  n_envs: {n_envs}")
    lines.append(f"  n_timesteps: !!float {n_timesteps:g}")
    lines.append(f"  policy: '{policy}'")
    lines.extend(f"  {name}: {_yaml_scalar(ready[name])}" for name in sorted(ready))
    if policy_kwargs is not None:
        lines.append(f"  policy_kwargs: {json.dumps(policy_kwargs)}")
    return "\n".join(lines) + "\n"


@dataclass
class ZooHyperparameters:
    """A zoo block split into what the experiment needs and what the constructor takes.

    :param env_id: the block's key
    :param policy: the policy name or class
    :param n_timesteps: the training budget, or None when the block has none
    :param n_envs: the number of environments
    :param kwargs: constructor kwargs, ``policy_kwargs`` parsed
    :param experiment: the other zoo keys (``normalize``, ``env_wrapper``, ...), which the caller must apply itself
    """

    env_id: str
    policy: str
    n_timesteps: int | None
    n_envs: int
    kwargs: dict[str, Any]
    experiment: dict[str, Any] = field(default_factory=dict)


def parse_zoo_yaml(text: str, env_id: str | None = None) -> ZooHyperparameters:
    """Read one block of zoo YAML text into constructor kwargs.

    :param text: the YAML text
    :param env_id: the block to read; may be omitted when the text holds a single block
    :return: the block, ready to build a model
    :raises ValueError: when the block is missing or its policy_kwargs is not allowed
    """
    blocks = yaml.safe_load(text)
    if not isinstance(blocks, dict) or not blocks:
        raise ValueError("expected a YAML mapping from env id to hyperparameters")
    if env_id is None:
        if len(blocks) != 1:
            raise ValueError(f"several blocks ({', '.join(blocks)}): say which env_id to read")
        env_id = next(iter(blocks))
    if env_id not in blocks:
        raise ValueError(f"no block for {env_id!r}; the file has {', '.join(blocks)}")
    block = dict(blocks[env_id])
    kwargs = {name: value for name, value in block.items() if name not in ZOO_EXPERIMENT_KEYS}
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = parse_policy_kwargs(kwargs["policy_kwargs"])
    experiment = {name: block[name] for name in ZOO_EXPERIMENT_KEYS if name in block}
    n_timesteps = experiment.pop("n_timesteps", None)
    return ZooHyperparameters(
        env_id=env_id,
        policy=experiment.pop("policy", "MlpPolicy"),
        n_timesteps=None if n_timesteps is None else int(n_timesteps),
        n_envs=int(experiment.pop("n_envs", 1)),
        kwargs=kwargs,
        experiment=experiment,
    )


def load_hyperparameters(path: str | Path, env_id: str | None = None) -> ZooHyperparameters:
    """Read one block of a zoo YAML file into constructor kwargs.

    :param path: the YAML file, e.g. ``tuning_output/<study>/best_hyperparameters.yml``
    :param env_id: the block to read; may be omitted when the file holds a single block
    :return: the block, ready to build a model
    """
    return parse_zoo_yaml(Path(path).read_text(), env_id)


def make_model(
    algo: str,
    hyperparameters: ZooHyperparameters | str | Path,
    env: gym.Env | VecEnv | str | None = None,
    **overrides: Any,
) -> BaseAlgorithm:
    """Build a model from a zoo block, e.g. the ``best_hyperparameters.yml`` the tuner writes.

    :param algo: command-line name of the algorithm (``one_step_ac``, ``a2c``, ``ppo``)
    :param hyperparameters: a loaded block, or the path of a file with one block
    :param env: the environment; by default the block's own, built by :func:`sb3_ac_plus.zoo.make_model_and_env` as
        the comparison builds it (the block's ``n_envs``, ``normalize`` and wrappers)
    :param overrides: constructor kwargs that replace the block's (``seed``, ``verbose``, ``device``...)
    :return: the untrained model
    """
    if not isinstance(hyperparameters, ZooHyperparameters):
        hyperparameters = load_hyperparameters(hyperparameters)
    if env is None:
        from sb3_ac_plus.zoo import make_model_and_env

        block = {
            **hyperparameters.experiment,
            **hyperparameters.kwargs,
            "policy": hyperparameters.policy,
            "n_envs": hyperparameters.n_envs,
            "n_timesteps": hyperparameters.n_timesteps or 1,
        }
        seed = overrides.pop("seed", 0)
        model, _, _ = make_model_and_env(algo, hyperparameters.env_id, seed=seed, block=block, **overrides)
        return model
    algorithm_class = get_algorithm_class(algo)
    kwargs = {**hyperparameters.kwargs, **overrides}
    return algorithm_class(hyperparameters.policy, env if env is not None else hyperparameters.env_id, **kwargs)
