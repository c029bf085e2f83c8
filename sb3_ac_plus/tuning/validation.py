"""Check ``--fix`` and ``--enqueue`` before the first trial, so that a bad value is an error, not a study of failed trials.

Two levels, each raising a ValueError that names the hyperparameter and what is allowed:

- :func:`check_fixed_value`: one value alone, against the search space (a number for a float range, one of the kinds
  of the choices for a categorical, a net_arch or activation name) or, for a constructor argument the search leaves
  alone, against the kind of its default (a number, an integer, true or false).
- :func:`check_trial_values`: whole trials, as the sampler would build them around the fixed and enqueued values,
  through the zoo loader's checks (the ones every trial passes) and the algorithm's own where it has them (OneStepAC's
  :func:`~sb3_ac_plus.one_step_ac.hyperparameters.check_hyperparameters`). The trials checked are the first choice of
  every searched name, then each choice (or bound) of one searched name at a time, so that a fixed value that clashes
  with part of the search (``--fix n_steps=4`` while traces are searched) is found.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from optuna.trial import FixedTrial

from sb3_ac_plus.one_step_ac.hyperparameters import check_hyperparameters
from sb3_ac_plus.tuning.objective import zoo_block
from sb3_ac_plus.zoo.algorithms import get_algorithm_class
from sb3_ac_plus.zoo.config import SCHEDULE_KEYS, parse_config, parse_schedule
from sb3_ac_plus.zoo.search_spaces import activation_fn, net_arch, sample_hyperparameters, search_domains

# An algorithm's own check of its hyperparameters, called with its constructor's defaults completed by a trial's values.
ALGORITHM_CHECKS: dict[str, Callable[..., None]] = {"one_step_ac": check_hyperparameters}

Domain = tuple[float, float] | list[Any]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_schedule_name(name: str) -> bool:
    return name.endswith("_rate") or name in SCHEDULE_KEYS


def _describe(domain: Domain) -> str:
    if isinstance(domain, tuple):
        return f"the search draws it from [{domain[0]:g}, {domain[1]:g}]"
    return f"the search chooses from {domain}"


def _expected_kind(choices: list[Any]) -> tuple[str, Callable[[Any], bool]] | None:
    """The kind of value a categorical's choices share, or None when they mix kinds."""
    if all(isinstance(choice, bool) for choice in choices):
        return "true or false", lambda value: isinstance(value, bool)
    if all(_is_integer(choice) for choice in choices):
        return "an integer", _is_integer
    if all(_is_number(choice) for choice in choices):
        return "a number", _is_number
    if all(isinstance(choice, str) for choice in choices):
        return "a name", lambda value: isinstance(value, str)
    return None


def _default_kind(algo: str, name: str) -> tuple[str, Callable[[Any], bool]] | None:
    """The kind of value a constructor argument takes, read from its default (None when the default says nothing)."""
    parameter = inspect.signature(get_algorithm_class(algo).__init__).parameters.get(name)
    default = None if parameter is None else parameter.default
    if isinstance(default, bool):
        return "true or false", lambda value: isinstance(value, bool)
    if _is_integer(default):
        return "an integer", _is_integer
    if isinstance(default, float):
        return "a number", _is_number
    return None


def check_fixed_value(algo: str, name: str, value: Any) -> None:
    """Check the kind of one ``--fix`` value. Any value of the right kind is accepted: a fixed value is not searched,
    so it may lie outside the search's range (which is named in the message).

    :param algo: command-line name of the algorithm
    :param name: the hyperparameter, searched or a constructor argument
    :param value: the value given
    :raises ValueError: naming the hyperparameter, the kind expected and what the search draws
    """
    domain = search_domains(algo).get(name)
    searched = f"; {_describe(domain)}" if domain is not None else ""
    if name == "net_arch":
        net_arch(value)
    elif name == "activation_fn":
        activation_fn(value)
    elif _is_schedule_name(name):
        if name == "critic_learning_rate" and value is None:
            return
        try:
            parse_schedule("", name, value)
        except ValueError:
            raise ValueError(f"{name} must be a number or lin_<number> (a linear schedule), got {value!r}{searched}") from None
    else:
        if isinstance(domain, list):
            kind = _expected_kind(domain)
        elif isinstance(domain, tuple):
            kind = ("a number", _is_number)
        else:
            kind = _default_kind(algo, name)
        if kind is not None and not kind[1](value):
            raise ValueError(f"{name} must be {kind[0]}, got {value!r}{searched}")


def _trials(domains: Mapping[str, Domain], given: Mapping[str, Any], fixed: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The values a FixedTrial replays: each searched name's first choice (or lower bound) with ``given`` on top, then
    the same with one other searched name at each of its choices (or bounds)."""
    base = {name: domain[0] for name, domain in domains.items()} | dict(given)
    yield base
    for name, domain in domains.items():
        if name in given or name in fixed:
            continue
        for value in domain[1:]:
            yield base | {name: value}


def _algorithm_check(algo: str, kwargs: Mapping[str, Any]) -> None:
    check = ALGORITHM_CHECKS.get(algo)
    if check is None:
        return
    defaults = {
        parameter.name: parameter.default
        for parameter in inspect.signature(get_algorithm_class(algo).__init__).parameters.values()
        if parameter.default is not inspect.Parameter.empty
    }
    arguments = {name: kwargs.get(name, defaults.get(name)) for name in inspect.signature(check).parameters}
    check(**arguments)


def check_trial_values(
    algo: str, env_id: str, fixed: Mapping[str, Any], enqueued: Mapping[str, Any], continuous_actions: bool
) -> None:
    """Check the trials the sampler would build around ``fixed`` (and ``enqueued``, for one enqueued trial).

    :param algo: command-line name of the algorithm
    :param env_id: the env, whose zoo block the trials start from
    :param fixed: the ``--fix`` values
    :param enqueued: one ``--enqueue`` trial's values, or ``{}``
    :param continuous_actions: whether the env's actions are a Box (exploration noise is searched then)
    :raises ValueError: the algorithm's or the loader's message, and the searched value that leads to it if any
    """
    block = zoo_block(algo, env_id)
    block.pop("n_timesteps", None)
    base, *variations = _trials(search_domains(algo), enqueued, fixed)
    for params in (base, *variations):
        kwargs = sample_hyperparameters(FixedTrial(params), algo, fixed, continuous_actions)
        try:
            config = parse_config(algo, env_id, {**block, **kwargs, "n_timesteps": 1})
            _algorithm_check(algo, config.kwargs)
        except (ValueError, TypeError) as error:
            message = str(error).removeprefix(f"{env_id}: ")
            for name in (name for name in params if params[name] != base[name]):
                message += f" (in trials where the search draws {name}={params[name]!r}: fix {name} as well)"
            raise ValueError(message) from None
