"""The algorithms the tuner knows, by their command-line name.

OneStepAC is imported on first use, so that ``--help`` and the A2C/PPO paths work even where ``sb3_ac_plus`` is
missing or broken.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

# command-line name -> "module:ClassName"
ALGORITHMS: dict[str, str] = {
    "one_step_ac": "sb3_ac_plus:OneStepAC",
    "a2c": "stable_baselines3:A2C",
    "ppo": "stable_baselines3:PPO",
}


def get_algorithm_class(name: str) -> type[BaseAlgorithm]:
    """Import and return the class of an algorithm.

    :param name: command-line name, a key of :data:`ALGORITHMS`
    :return: the algorithm class
    :raises ImportError: when the module providing the algorithm cannot be imported
    """
    module_name, class_name = ALGORITHMS[name].split(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def constructor_parameters(name: str) -> set[str]:
    """Names of the keyword arguments the algorithm's constructor accepts, ``policy`` and ``env`` excluded.

    :param name: command-line name of the algorithm
    :return: the parameter names
    """
    signature = inspect.signature(get_algorithm_class(name).__init__)
    return {
        parameter.name
        for parameter in signature.parameters.values()
        if parameter.name not in ("self", "policy", "env")
        and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
