"""One range check for every numeric command-line option: argparse then names the option and the range.

``lung-unet finetune --steps -5`` must stop at the command line ("argument --steps: must be an
integer >= 1, got -5"), not train a version that is then rejected, and ``--batch-size 0`` must not
reach ``torch.stack`` of nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..settings import in_range


def ranged(
    kind: type[int] | type[float], low: float | None = None, high: float | None = None,
    *, low_open: bool = False, high_open: bool = False,
) -> Callable[[str], int | float]:
    """An argparse ``type=`` that parses ``kind`` and refuses values outside [low, high] (open ends if asked)."""
    noun = "an integer" if kind is int else "a number"
    wanted = f"{noun} {_range_text(low, high, low_open, high_open)}".strip()

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if not in_range(value, low, high, low_open, high_open):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        left, right = ("above" if low_open else "from"), ("below" if high_open else "to")
        return f"{left} {low:g} {right} {high:g}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


# the ranges several commands share
POSITIVE_INT = ranged(int, 1)
NON_NEGATIVE_INT = ranged(int, 0)
POSITIVE = ranged(float, 0, low_open=True)
NON_NEGATIVE = ranged(float, 0)
FRACTION = ranged(float, 0, 1)
