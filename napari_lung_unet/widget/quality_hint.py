"""The dock's quality hint for one proposal: "expected Dice 0.93 — check the lower left lung", and a
toggleable heat overlay of where the model is unsure (issue 29).

Two halves, so the GUI thread never computes: :func:`quality_hint` runs with the proposal, on the
worker's thread (a few ms at the network's size, whatever the X-ray's size); :func:`show_hint` runs
on the GUI thread and only adds or replaces one napari Image layer. The layer holds the network-size
doubt map (2·min(p, 1 − p), 0 outside the unsure region) and is stretched onto the X-ray by its
scale, so a 20-Mpx image costs no full-size array. Toggle it with ``layer.visible``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..nn.quality import FLAG_BELOW, hint_text, region_hint

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
    # the labels at the network's size, nearest neighbour as torch picks it (source = floor(target · in / out)),
    # by indexing: resizing a 20-Mpx mask as floats cost 170 ms of the proposal's worker
    height, width = prediction.labels.shape
    rows = np.arange(prob.shape[0]) * height // prob.shape[0]
    cols = np.arange(prob.shape[1]) * width // prob.shape[1]
    small_labels = np.asarray(prediction.labels)[np.ix_(rows, cols)].astype(np.uint8)
    place, region = region_hint(prob, small_labels)
    heat = np.where(region, 2.0 * np.minimum(prob, 1.0 - prob), 0.0).astype(np.float32)
    value = prediction.expected_dice
    return QualityHint(value, hint_text(value, place, below), place, heat, tuple(prediction.labels.shape))


def show_hint(viewer: Any, image_layer: Any, hint: QualityHint, visible: bool = True) -> Any:
    """Add (or replace) the heat overlay above ``image_layer``, aligned with it; returns the layer."""
    name = f"{image_layer.name}{HINT_SUFFIX}"
    if name in viewer.layers:
        viewer.layers.remove(name)
    factor = np.array(hint.image_shape, float) / np.array(hint.heat.shape, float)
    scale = np.asarray(image_layer.scale[-2:], float) * factor
    # pixel centres: a network pixel covers `factor` image pixels, its centre lies half a block in
    translate = np.asarray(image_layer.translate[-2:], float) + (factor - 1.0) / 2.0 * np.asarray(image_layer.scale[-2:], float)
    return viewer.add_image(
        hint.heat, name=name, colormap="inferno", blending="additive", opacity=0.6, contrast_limits=(0.0, 1.0),
        scale=tuple(scale), translate=tuple(translate), visible=visible,
    )
