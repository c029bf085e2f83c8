"""Build a model and its VecEnv from an rl-baselines3-zoo config block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecNormalize

from sb3_ac_plus.zoo.algorithms import get_algorithm_class
from sb3_ac_plus.zoo.config import ZooConfig, load_hyperparameters, parse_config


def make_env(config: ZooConfig, seed: int = 0) -> VecEnv:
    """The VecEnv a config describes: ``n_envs`` copies, then VecFrameStack and VecNormalize when asked for.

    :param config: a checked config
    :param seed: seed of the first env (the others get seed + 1, seed + 2, ...)
    :return: the VecEnv
    """
    env = make_vec_env(config.env_id, n_envs=config.n_envs, seed=seed, env_kwargs=config.env_kwargs or None)
    if config.frame_stack is not None:
        env = VecFrameStack(env, n_stack=config.frame_stack)
    if config.normalize_kwargs is not None:
        env = VecNormalize(env, **config.normalize_kwargs)
    return env


def make_model_and_env(
    algo: str,
    env_id: str,
    seed: int = 0,
    config_dir: str | Path | None = None,
    n_timesteps: int | None = None,
    block: dict[str, Any] | None = None,
    **overrides: Any,
) -> tuple[BaseAlgorithm, VecEnv, int]:
    """Build the model and VecEnv of ``env_id``'s block in ``<config_dir>/<algo>.yml``.

    :param algo: ``"one_step_ac"``, ``"a2c"``, ``"ppo"``, ``"trpo"``, or ``"sac"`` (no config file: give ``block``)
    :param env_id: the Gymnasium id
    :param seed: seed of the model and of the envs
    :param config_dir: the folder of the YAML files; defaults to the package's configs (the repository's ``zoo_configs/``)
    :param n_timesteps: the training budget; defaults to the block's ``n_timesteps``
    :param block: the block to start from instead of the file's (``{}``: SB3's defaults on one env)
    :param overrides: keys that replace the block's before it is checked (``verbose=0``, ``device="cpu"``,
        ``n_envs=1``, ``learning_rate="lin_1e-3"``...)
    :return: the untrained model, its env, and the training budget
    :raises ValueError: naming the env id and the key, for an unknown key or a malformed value
    """
    base = load_hyperparameters(algo, env_id, config_dir) if block is None else block
    block = {**base, **overrides}
    if n_timesteps is not None:
        block["n_timesteps"] = n_timesteps
    config = parse_config(algo, env_id, block)
    env = make_env(config, seed)
    try:
        model = get_algorithm_class(algo)(config.policy, env, seed=seed, **config.kwargs)
    except (ValueError, TypeError) as error:
        env.close()
        raise ValueError(f"{env_id}: {error}") from error
    return model, env, config.n_timesteps
