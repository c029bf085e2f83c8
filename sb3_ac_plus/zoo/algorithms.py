"""The algorithms a zoo config can name, by the name of their YAML file (``one_step_ac.yml``, ``a2c.yml``, ...)."""

from __future__ import annotations

import inspect

from sb3_contrib import TRPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_ac_plus.one_step_ac import OneStepAC

ALGOS: dict[str, type[BaseAlgorithm]] = {"one_step_ac": OneStepAC, "a2c": A2C, "ppo": PPO, "trpo": TRPO}
# What a comparison runs unless told otherwise (TRPO, from sb3-contrib, on request: --algos ... trpo).
DEFAULT_COMPARED = ("one_step_ac", "a2c", "ppo")


def get_algorithm_class(algo: str) -> type[BaseAlgorithm]:
    """The class of an algorithm of :data:`ALGOS`.

    :param algo: the algorithm's name, e.g. ``"one_step_ac"``
    :return: the class
    :raises ValueError: when the name is unknown, listing the known ones
    """
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; known: {', '.join(ALGOS)}")
    return ALGOS[algo]


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
