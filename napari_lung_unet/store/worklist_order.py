"""The order a worklist's cases are reviewed in: file order, or least sure first (the proposals'
expected Dice, lowest first), and the step Previous/Next take in it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..nn.quality_card import review_order_key


class Reviewable(Protocol):  # a worklist Case, as far as its order goes
    @property
    def unreviewed(self) -> bool: ...

    confidence: float | None  # the proposal's expected Dice (None: not proposed yet)


def least_sure_first(cases: Sequence[Reviewable]) -> list[int]:
    """Unreviewed cases' indices, lowest expected Dice first; not yet proposed last, in file order."""
    todo = [i for i, case in enumerate(cases) if case.unreviewed]
    return sorted(todo, key=lambda i: review_order_key(cases[i].confidence))


def review_order(cases: Sequence[Reviewable], least_sure: bool = False) -> list[int]:
    """File order, or the unreviewed cases least sure first and then the reviewed ones in file order."""
    if not least_sure:
        return list(range(len(cases)))
    return least_sure_first(cases) + [i for i, case in enumerate(cases) if not case.unreviewed]


def step(cases: Sequence[Reviewable], start: int, direction: int, unreviewed_only: bool = False,
         least_sure: bool = False) -> int | None:
    """The next index from ``start`` in ``direction`` (+1/-1) in :func:`review_order`, or None at its end.

    Least sure first, a reviewed ``start`` (just accepted, or opened from the list) steps forward to the
    least sure unreviewed case: the order moved it among the reviewed ones at the end."""
    order = review_order(cases, least_sure)
    if least_sure and direction > 0 and not cases[start].unreviewed:
        todo = [i for i in order if cases[i].unreviewed and i != start]
        return todo[0] if todo else None
    position = order.index(start) + direction
    while 0 <= position < len(order):
        i = order[position]
        if not unreviewed_only or cases[i].unreviewed:
            return i
        position += direction
    return None
