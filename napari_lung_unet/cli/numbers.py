"""One range check for every numeric command-line option: argparse then names the option and the range.

``lung-unet finetune --steps -5`` must stop at the command line ("argument --steps: must be an
integer >= 1, got -5"), not train a version that is then rejected, and ``--batch-size 0`` must not
reach ``torch.stack`` of nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..settings import Range


def ranged(
    kind: type[int] | type[float], low: float | None = None, high: float | None = None,
    *, low_open: bool = False, high_open: bool = False,
) -> Callable[[str], int | float]:
    """An argparse ``type=`` that parses ``kind`` and refuses values outside [low, high] (open ends if asked)."""
    return of_range(Range(kind, low, high, low_open, high_open))


def of_range(limits: Range) -> Callable[[str], int | float]:
    """An argparse ``type=`` for a :class:`Range` declared elsewhere (a config's own limits)."""
    wanted = limits.text()

    def parse(text: str) -> int | float:
        try:
            value = limits.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if not limits.holds(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    parse.__name__ = limits.kind.__name__  # argparse names the type in some messages
    return parse


# the ranges several commands share
POSITIVE_INT = ranged(int, 1)
NON_NEGATIVE_INT = ranged(int, 0)
POSITIVE = ranged(float, 0, low_open=True)
NON_NEGATIVE = ranged(float, 0)
FRACTION = ranged(float, 0, 1)
