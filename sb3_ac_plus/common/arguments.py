"""Argparse types shared by the command lines (compare, run, quickstart, the tuner, the benchmarks)."""

import argparse
import difflib
from collections.abc import Callable
from typing import Any


def number_at_least(kind: type, minimum: float, inclusive: bool = True) -> Callable[[str], Any]:
    """
    :param kind: ``int`` or ``float``
    :param minimum: the smallest value allowed
    :param inclusive: whether ``minimum`` itself is allowed
    :return: an argparse ``type`` that parses ``kind`` and checks ``value >= minimum`` (or ``> minimum``)
    """
    noun = "an integer" if kind is int else "a number"
    expected = f"expected {noun} {'>=' if inclusive else '>'} {minimum}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
        if not (value >= minimum if inclusive else value > minimum):
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
        return value

    return parse


positive_int = number_at_least(int, 1)
non_negative_int = number_at_least(int, 0)
positive_float = number_at_least(float, 0, inclusive=False)


def env_id_problem(env_id: str) -> str | None:
    """
    Why an env cannot be made, for a command line's ``--env`` error: an id Gymnasium does not know (with the closest
    ones it does), or a package the env needs that is not installed (Box2D, MuJoCo...). The env is made once to find
    out, and closed.

    :param env_id: a Gymnasium id, or ``"module:EnvId"`` (the module registers it when the env is made)
    :return: the problem, or None if the env can be made
    """
    import gymnasium as gym  # here: the numeric argument types above need no env library

    if ":" not in env_id and env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        return f"unknown Gymnasium env id {env_id!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
    try:
        gym.make(env_id).close()
    except gym.error.DependencyNotInstalled as error:
        box2d = "Box2D" in str(error)
        hint = " (pip install box2d; sb3-ac-plus's extra 'zoo' includes it)" if box2d else ""
        return f"{env_id} needs a package that is not installed: {error}{hint}"
    except (gym.error.Error, ModuleNotFoundError) as error:
        return f"{env_id} cannot be made: {error}"
    return None
