"""The algorithms the tuner knows, by their command-line name: the zoo's table (:mod:`sb3_ac_plus.zoo.algorithms`)."""

from __future__ import annotations

from sb3_ac_plus.zoo.algorithms import ALGOS as ALGORITHMS
from sb3_ac_plus.zoo.algorithms import constructor_parameters as _class_constructor_parameters
from sb3_ac_plus.zoo.algorithms import get_algorithm_class

__all__ = ["ALGORITHMS", "constructor_parameters", "get_algorithm_class"]


def constructor_parameters(name: str) -> set[str]:
    """Names of the keyword arguments the algorithm's constructor accepts (``policy``, ``env`` and private ones excluded).

    :param name: command-line name of the algorithm
    :return: the parameter names
    """
    return _class_constructor_parameters(get_algorithm_class(name))
