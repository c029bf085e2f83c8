"""rl-baselines3-zoo hyperparameter files: load them safely and build models from them.

    from sb3_ac_plus.zoo import make_model_and_env

    model, env, n_timesteps = make_model_and_env("ppo", "CartPole-v1", seed=0)
    model.learn(n_timesteps)

- :mod:`~sb3_ac_plus.zoo.policy_kwargs`: ``policy_kwargs`` strings read with :mod:`ast`, never ``eval``.
- :mod:`~sb3_ac_plus.zoo.config`: find an env's block and check every key.
- :mod:`~sb3_ac_plus.zoo.loader`: build the VecEnv and the model.
- :mod:`~sb3_ac_plus.zoo.search_spaces`: the ranges each algorithm is tuned over (the tuner's and rl_zoo3's).
- :mod:`~sb3_ac_plus.zoo.rl_zoo3_plugin`: register OneStepAC into rl_zoo3 (optional, needs ``rl_zoo3``).
"""

from sb3_ac_plus.zoo.algorithms import ALGOS
from sb3_ac_plus.zoo.config import DEFAULT_CONFIG_DIR, ZooConfig, load_hyperparameters, parse_config, read_block
from sb3_ac_plus.zoo.loader import make_env, make_model_and_env
from sb3_ac_plus.zoo.policy_kwargs import SAFE_NAMES, format_policy_kwargs, parse_policy_kwargs

__all__ = [
    "ALGOS",
    "DEFAULT_CONFIG_DIR",
    "SAFE_NAMES",
    "ZooConfig",
    "format_policy_kwargs",
    "load_hyperparameters",
    "make_env",
    "make_model_and_env",
    "parse_config",
    "parse_policy_kwargs",
    "read_block",
]
