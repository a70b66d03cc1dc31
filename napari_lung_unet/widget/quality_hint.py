"""The dock's quality hint for one proposal: "expected Dice 0.93 — check the lower left lung", and a
toggleable heat overlay of where the model is unsure (issue 29).

The GUI thread never computes: :func:`quality_hint` runs with the proposal, on the worker's thread (a
few ms at the network's size, whatever the X-ray's size), and :mod:`.unsure_overlay` only shows its
network-size doubt map (2·min(p, 1 − p), 0 outside the unsure region), stretched onto the X-ray by its
scale, so a 20-Mpx image costs no full-size array. A worklist caches the map (:func:`heat_to_png`),
and :func:`place_of` names its place again when the case is reopened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..nn.quality import FLAG_BELOW, hint_text, name_place, region_hint

if TYPE_CHECKING:
    from ..nn.predict import Prediction

HINT_SUFFIX = " (unsure)"  # the overlay's name: the X-ray's name + this; not a "lungs" layer


@dataclass
class QualityHint:
    expected_dice: float
    text: str  # the dock's line
    place: str  # "the lower left lung", or "" when nothing is unsure
    heat: np.ndarray  # float32 at the network's size: 2·min(p, 1 − p) inside the unsure region, 0 elsewhere
    image_shape: tuple[int, int]  # the X-ray's, which the heat is stretched onto


def quality_hint(prediction: Prediction, below: float = FLAG_BELOW) -> QualityHint:
    """Everything the dock shows about the proposal's quality, computed off the GUI thread."""
    prob = np.asarray(prediction.small_probability, dtype=np.float32)
    place, region = region_hint(prob, _at_network_size(prediction.labels, prob.shape))
    heat = np.where(region, 2.0 * np.minimum(prob, 1.0 - prob), 0.0).astype(np.float32)
    value = prediction.expected_dice
    return QualityHint(value, hint_text(value, place, below), place, heat, tuple(prediction.labels.shape))


def _at_network_size(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``labels`` at the network's size, nearest neighbour as torch picks it (source = floor(target · in / out)),
    by indexing: resizing a 20-Mpx mask as floats cost 170 ms of the proposal's worker."""
    height, width = labels.shape[-2:]
    rows = np.arange(shape[0]) * height // shape[0]
    cols = np.arange(shape[1]) * width // shape[1]
    return np.asarray(labels)[np.ix_(rows, cols)].astype(np.uint8)


def heat_to_png(heat: np.ndarray) -> np.ndarray:
    """The doubt map as 0-255, to be cached beside a worklist's proposal (1/255 is far below the view's use)."""
    return np.round(np.clip(heat, 0.0, 1.0) * 255.0).astype(np.uint8)


def heat_from_png(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(pixels, dtype=np.float32) / 255.0


def place_of(heat: np.ndarray, labels: np.ndarray) -> str:
    """Where a cached proposal was unsure, named from its doubt map as :func:`quality_hint` named it."""
    region = heat > 0
    return name_place(region, _at_network_size(labels, heat.shape)) if region.any() else ""
