"""Argparse types shared by the command lines (compare, run, quickstart, the tuner, the benchmarks)."""

import argparse
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
