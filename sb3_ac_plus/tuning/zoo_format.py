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
names listed in :data:`SAFE_NAMES` are accepted. Files are read back by :mod:`sb3_ac_plus.zoo` (one reader for the
package's configs and the tuner's output), every key checked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sb3_ac_plus.zoo import ALGOS, make_model_and_env, parse_config, read_block
from sb3_ac_plus.zoo.policy_kwargs import SAFE_NAMES, format_policy_kwargs, parse_policy_kwargs

__all__ = [
    "SAFE_NAMES",
    "format_policy_kwargs",
    "format_zoo_block",
    "make_model",
    "parse_policy_kwargs",
    "read_block",
    "to_yaml_ready",
]

if TYPE_CHECKING:
    import gymnasium as gym
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecEnv


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


def make_model(
    algo: str,
    path: str | Path,
    env: gym.Env | VecEnv | str | None = None,
    env_id: str | None = None,
    **overrides: Any,
) -> BaseAlgorithm:
    """Build a model from a zoo file, e.g. the ``best_hyperparameters.yml`` the tuner writes.

    The block is read and checked by :mod:`sb3_ac_plus.zoo`, the loader the comparison uses.

    :param algo: command-line name of the algorithm (``one_step_ac``, ``a2c``, ``ppo``...)
    :param path: the YAML file
    :param env: the environment; by default the block's own, built by :func:`sb3_ac_plus.zoo.make_model_and_env` as
        the comparison builds it (the block's ``n_envs``, ``normalize`` and wrappers). An env given here is used as it
        is: the block's ``n_envs`` and ``normalize`` are then not applied.
    :param env_id: the block to read; may be omitted when the file holds a single block
    :param overrides: keys that replace the block's (``seed``, ``verbose``, ``device``, ``learning_rate``...)
    :return: the untrained model
    :raises ValueError: naming the env id and the key, for a missing block, an unknown key or a malformed value
    """
    env_id, block = read_block(path, env_id)
    seed = overrides.pop("seed", 0)
    if env is None:
        model, _, _ = make_model_and_env(algo, env_id, seed=seed, block=block, **overrides)
        return model
    config = parse_config(algo, env_id, {**block, **overrides})
    return ALGOS[algo](config.policy, env, seed=seed, **config.kwargs)
