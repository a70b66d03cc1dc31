"""What the model said about one image's mask, so that what the hand painted can be told apart.

A refine keeps hand-painted pixels exactly. "Hand-painted" is every pixel where the layer differs
from what the model said: the proposal, with each refine's answer written in. That holds through
napari's undo and redo of strokes, which write the history straight into the array (an undone
stroke equals the model again, so it is no longer "painted"). An undone refine must leave what
the model said too, or its pixels would look painted: :meth:`ModelMask.follow_history` pops it
when the layer holds the refine's old values again, and pushes it back on a redo.

Plain numpy, no Qt: the refine worker reads it; the GUI thread changes it.
"""

from __future__ import annotations

import numpy as np

Indices = tuple[np.ndarray, np.ndarray]


class ModelMask:
    def __init__(self, proposal: np.ndarray) -> None:
        self.said = np.array(proposal, dtype=np.uint8, copy=True)
        self._done: list[tuple[Indices, np.ndarray, np.ndarray]] = []  # refines written, oldest first
        self._undone: list[tuple[Indices, np.ndarray, np.ndarray]] = []  # refines undone, latest last

    @property
    def live(self) -> int:
        """How many refines the mask holds now (undone ones not counted)."""
        return len(self._done)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.said.shape

    def painted(self, labels: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
        """Inside ``box``: the pixels the hand changed (they differ from what the model said)."""
        return np.asarray(labels[box]) != self.said[box]

    def refined(self, indices: Indices, old: np.ndarray, new: np.ndarray) -> None:
        """A refine wrote ``new`` over ``old`` at ``indices``: that is what the model says there now."""
        self.said[indices] = new
        self._done.append((indices, np.asarray(old), np.asarray(new)))
        self._undone.clear()  # a new action ends napari's redo list too

    def follow_history(self, labels: np.ndarray) -> None:
        """After an undo or redo: refines the layer no longer holds are taken back (and redone ones restored)."""
        while self._done:
            indices, old, new = self._done[-1]
            if not np.array_equal(labels[indices], old):
                break
            self.said[indices] = old
            self._undone.append(self._done.pop())
        while self._undone:
            indices, old, new = self._undone[-1]
            if not np.array_equal(labels[indices], new):
                break
            self.said[indices] = new
            self._done.append(self._undone.pop())
