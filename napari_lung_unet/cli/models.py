"""lung-unet models: list the registered model versions; * marks the one predict uses.

With --rollback VERSION, make VERSION current again (for example after a fine-tune that
turned out worse); the weights stay on disk, so any version can be made current later.
With --promote VERSION, accept a fine-tuned version that the gate kept "unverified" (the
original validation data was not on this computer): it becomes current only if its parent
still is, so a rollback made meanwhile is not undone. With --recheck VERSION, score a kept
candidate against the current model on the corrections accepted since it was made: where the
verdict could not yet measure a small gain, later corrections can.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..nn.card import ModelCard
from ..nn.registry import DamagedPointer, Registry
from ..settings import corrections_dir
from ..store.payoff import VersionPayoff, by_version, payoff_by_version
from ..text import printable

KEY_METRICS = ("dice", "iou")  # the headline numbers; the card keeps the rest
MAX_METRICS = 3
STAGES = {"before": 0, "after": 2}  # a fine-tune's card: the parent's number, then the candidate's


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list model versions, or roll back to one",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--rollback", metavar="VERSION", help="make VERSION the current model")
    group.add_argument("--promote", metavar="VERSION", help="accept an unverified fine-tuned VERSION as the current model")
    group.add_argument("--recheck", metavar="VERSION", help="score a kept fine-tuned VERSION against the current model on "
                       "the corrections accepted since it was made (the verdict's paired test)")
    p.add_argument("--corrections", metavar="DIR", help="corrections store for --recheck (default: the widget's store)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    registry = Registry()
    if args.recheck:
        from training.recheck import recheck  # lazy: it loads torch models; listing versions does not

        result = recheck(args.recheck, Path(args.corrections) if args.corrections else corrections_dir(), registry)
        print(printable(result.line()))
        if result.test.gained:
            print(printable(f"Make it current: lung-unet models --rollback {result.version}"))
        return 0
    if args.promote:
        card = registry.card(args.promote)
        if not card.parent:
            raise ValueError(f"{args.promote} is not a fine-tuned version; use --rollback to make it current")
        registry.promote(args.promote, expected_current=card.parent)  # PromotionConflict says why not
        print(f"current model: {card.parent} -> {args.promote}")
        return 0
    if args.rollback:
        try:
            before = registry.current_version()
        except DamagedPointer:
            before = "(damaged pointer)"  # rolling back is how a damaged pointer is repaired
        if args.rollback == before:
            print(f"{before} is already the current model")
            return 0
        registry.set_current(args.rollback)
        print(f"current model: {before} -> {registry.current_version()}")
        return 0
    cards, unreadable = registry.read_cards()
    current = registry.current_version()
    payoff, _ = payoff_by_version(corrections_dir())
    print(format_table(cards, current, unreadable, by_version(payoff)))
    for version, reason in unreadable.items():
        print(f"unreadable: {printable(version)}: {printable(reason)}", file=sys.stderr)
    return 1 if unreadable else 0


def format_table(
    cards: list[ModelCard], current: str, unreadable: dict[str, str] | None = None, payoff: dict[str, VersionPayoff] | None = None,
) -> str:
    """One row per version; an unreadable one still gets its row (and its * when current). REVIEWED and
    CHANGED: the cases accepted from its proposals in the corrections store, and the share of each
    proposal the clinician changed (median / mean): the loop's payoff on the clinician's own work."""
    header = ("", "VERSION", "STATUS", "CREATED", "PARENT", "REVIEWED", "CHANGED (MEDIAN/MEAN)", "METRICS")
    payoff = payoff or {}
    rows = [header] + [
        ("*" if c.version == current else "", c.version, c.status, c.created, c.parent or "-", *_payoff_cells(payoff.get(c.version)),
         key_metrics(c.metrics) or "-")
        for c in cards
    ] + [("*" if v == current else "", v, "UNREADABLE", "-", "-", *_payoff_cells(payoff.get(v)), "-") for v in (unreadable or {})]
    rows = [tuple(printable(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _payoff_cells(row: VersionPayoff | None) -> tuple[str, str]:
    if row is None:
        return "-", "-"
    return f"{row.cases} case{'s' if row.cases != 1 else ''}", f"{row.median_changed:.1%} / {row.mean_changed:.1%}"


def key_metrics(metrics: dict[str, Any]) -> str:
    """A few headline numbers (Dice, IoU) from a card's possibly nested metrics, each field once:
    ``val_dice=0.962``, or ``holdout_dice=0.963->0.927`` for a fine-tune's before and after."""
    picked: dict[str, list[tuple[int, float]]] = {}
    for key, value in _flatten(metrics):
        *path, name = key.split(".")
        if any(m in name for m in KEY_METRICS):
            stage = STAGES.get(path[0], 1) if path else 1  # cards store their keys sorted: "after" first
            picked.setdefault(name, []).append((stage, value))
    shown = list(picked.items())[:MAX_METRICS]
    return " ".join(f"{name}=" + "->".join(f"{v:.3f}" for _, v in sorted(values, key=lambda sv: sv[0])) for name, values in shown)


def _flatten(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, name + ".")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield name, float(value)
