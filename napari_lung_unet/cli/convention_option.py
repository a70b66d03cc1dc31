"""``--convention lung-fields|whole-lung``: one option, the same on predict, finetune and evaluate."""

from __future__ import annotations

import argparse

from ..images.conventions import NAMES


def add_convention(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--convention``; ``what`` says what it means for this command. Not given: None (the command decides)."""
    parser.add_argument(
        "--convention", choices=NAMES, default=None,
        help=f"{what}: lung-fields (the visible lung fields) or whole-lung (the lung behind the heart and the domes "
        "included; see the README)",
    )
