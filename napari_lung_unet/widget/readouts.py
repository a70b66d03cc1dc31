"""Live readouts: area per lung and the fraction of the proposal changed, updated per paint event.

A full recount of a 20-Mpx mask costs ~0.5 s on a laptop core, far too slow after every brush
stroke, so :class:`LungStats` updates its counts from the history atoms that napari puts in
``layer.events.paint`` (they hold exactly the pixels that changed and their old values). A full
recount happens only when a case opens, a proposal arrives, or an atom type is unknown.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import QLabel

from ..images.labels import LEFT_LUNG, LUNGS, RIGHT_LUNG
from . import strings

N_LABELS = 1 + len(LUNGS)  # background and each lung, indexed by label value


class LungStats:
    """Pixel counts per label and pixels differing from the proposal, kept in step with the layer."""

    def __init__(self) -> None:
        self.areas = np.zeros(N_LABELS, dtype=np.int64)
        self.changed = 0
        self.proposal_pixels = 0
        self.proposal: np.ndarray | None = None

    def recount(self, labels: np.ndarray, proposal: np.ndarray | None) -> None:
        labels = np.asarray(labels)
        self.areas = _counts(labels)
        self.proposal = proposal
        if proposal is None or proposal.shape != labels.shape:
            self.proposal, self.changed, self.proposal_pixels = None, 0, 0
        else:
            self.changed = int(np.count_nonzero(labels != proposal))
            self.proposal_pixels = int(np.count_nonzero(proposal))

    def apply(self, atoms: list[Any], labels: np.ndarray) -> bool:
        """Update from one paint event's atoms; False when an atom is not understood (recount then)."""
        for atom in atoms:
            if hasattr(atom, "slice_key"):  # napari's masked paint atom (paint, fill, polygon)
                region = np.asarray(labels[atom.slice_key])
                mask = np.ones(region.shape, bool) if atom.mask is None else atom.mask
                old = np.asarray(atom.old_values)
                old = old[mask] if atom.mask is None else old
                new = np.full(old.shape, atom.new_value)
                prop = self.proposal[atom.slice_key][mask] if self.proposal is not None else None
            elif isinstance(atom, tuple) and len(atom) == 3:  # data_setitem: (indices, old, new)
                indices, old, new = atom
                old = np.asarray(old)
                new = np.broadcast_to(np.asarray(new), old.shape)
                prop = self.proposal[indices] if self.proposal is not None else None
            else:
                return False
            self.areas += _counts(new) - _counts(old)
            if prop is not None:
                self.changed += int(np.count_nonzero(new != prop)) - int(np.count_nonzero(old != prop))
        return True

    @property
    def fraction_changed(self) -> float:
        """Pixels that differ from the proposal, relative to the proposal's lung area (capped at 1)."""
        if self.proposal is None:
            return 0.0
        return min(1.0, self.changed / max(self.proposal_pixels, 1))


def _counts(labels: np.ndarray) -> np.ndarray:
    """Pixels per label 0..2. Two count_nonzero passes: np.bincount would first copy a 20-Mpx
    mask to int64 (160 MB) and took 2 s where this takes ~30 ms. Other values count as 0."""
    right, left = int(np.count_nonzero(labels == RIGHT_LUNG)), int(np.count_nonzero(labels == LEFT_LUNG))
    return np.array([labels.size - right - left, right, left], dtype=np.int64)


def format_area(pixels: int, spacing: tuple[float, float] | None) -> str:
    """cm² when the pixel spacing (mm) is known, else pixels: a pixel count is not an anatomy size."""
    if spacing:
        return f"{pixels * spacing[0] * spacing[1] / 100.0:.1f} cm²"
    return f"{pixels:,} px"


class ReadoutsLabel(QLabel):
    """Shows the current :class:`LungStats`; the review controller calls :meth:`show_stats`."""

    def __init__(self) -> None:
        super().__init__(strings.READOUT_EMPTY)
        self.setWordWrap(True)

    def show_stats(self, stats: LungStats, spacing: tuple[float, float] | None) -> None:
        if not stats.areas.any():  # no mask at all (an unreadable case, an image not proposed yet)
            self.setText(strings.READOUT_EMPTY)
            return
        self.setText(
            strings.READOUT.format(
                right=format_area(int(stats.areas[RIGHT_LUNG]), spacing),
                left=format_area(int(stats.areas[LEFT_LUNG]), spacing),
                changed=100.0 * stats.fraction_changed,
            )
        )
