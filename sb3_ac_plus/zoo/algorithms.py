"""The algorithms a zoo config can name, by the name of their YAML file (``one_step_ac.yml``, ``a2c.yml``, ...), and
those known by name without a YAML file, built from their own defaults only."""

from __future__ import annotations

import inspect

from sb3_contrib import TRPO
from stable_baselines3 import A2C, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_ac_plus.one_step_ac import OneStepAC

# The algorithms with a config file, zoo_configs/<name>.yml: the choices of compare, run and the tuner.
ALGOS: dict[str, type[BaseAlgorithm]] = {"one_step_ac": OneStepAC, "a2c": A2C, "ppo": PPO, "trpo": TRPO}
# Known by name, without a config file: a block for them starts from their defaults (``sac@defaults`` in
# ``python -m benchmarks.scale``, the off-policy baseline of the MuJoCo benchmark).
DEFAULTS_ONLY: dict[str, type[BaseAlgorithm]] = {"sac": SAC}
# What a comparison runs unless told otherwise (TRPO, from sb3-contrib, on request: --algos ... trpo).
DEFAULT_COMPARED = ("one_step_ac", "a2c", "ppo")


def get_algorithm_class(algo: str) -> type[BaseAlgorithm]:
    """The class of an algorithm of :data:`ALGOS` or :data:`DEFAULTS_ONLY`.

    :param algo: the algorithm's name, e.g. ``"one_step_ac"``
    :return: the class
    :raises ValueError: when the name is unknown, listing the known ones
    """
    known = {**ALGOS, **DEFAULTS_ONLY}
    if algo not in known:
        raise ValueError(f"unknown algorithm {algo!r}; known: {', '.join(known)}")
    return known[algo]


def constructor_parameters(algorithm_class: type[BaseAlgorithm]) -> set[str]:
    """Keyword arguments the constructor accepts, ``self``, ``policy``, ``env`` and private ones excluded.

    :param algorithm_class: the algorithm
    :return: the parameter names
    """
    return {
        parameter.name
        for parameter in inspect.signature(algorithm_class.__init__).parameters.values()
        if parameter.name not in ("self", "policy", "env")
        and not parameter.name.startswith("_")
        and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
