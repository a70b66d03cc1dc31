"""Refine clicks on screen: a points layer above the mask, green where a click grew it, magenta where
it shrank it (as micro-sam shows its prompts). It shows the clicks whose refines the mask still holds,
so undoing a refine takes its point away and redoing it brings the point back.

The layer is paired with its image like a mask (``layers.PAIR_KEY``), never selected (napari sends
clicks to the selected layer only: the mask must keep them), and emptied when the mask is replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from napari.layers import Points
from qtpy.QtCore import QTimer

from ..nn.refine import Click
from . import layers
from .dock_state import DockState

MARKS = "refine clicks"
GROW, SHRINK = "#00e000", "#ff00ff"  # green: lung the proposal missed; magenta: marked lung that is not
WARM_MS = 300  # the transparent first point is kept until the canvas has drawn it


class ClickMarks:
    def __init__(self, state: DockState) -> None:
        self.state = state

    def layer_of(self, image_id: str) -> Points | None:
        for layer in self.state.viewer.layers:
            if isinstance(layer, Points) and layer.metadata.get(layers.PAIR_KEY) == image_id:
                return layer
        return None

    def ensure(self, image_id: str) -> None:
        """Add the layer when Refine mode turns on, not at the first click: adding a napari layer costs
        150-550 ms of the GUI thread here, and vispy sets a points layer up for drawing at its first draw
        with a point in it: a first click's heartbeat gap was 229-380 ms without that done beforehand,
        55-65 ms with it (its bound is 250 ms). So the layer starts with one point, drawn fully
        transparent, and is emptied once drawn."""
        if self.layer_of(image_id) is not None:
            return
        image = layers.find_layer(self.state.viewer, image_id)
        if image is None:
            return
        centre = [[s / 2 for s in image.data.shape[:2]]]
        layer = self._draw(image_id, [], create=True, points=np.array(centre, float))
        if layer is not None:
            layer.opacity = 0.0
            QTimer.singleShot(WARM_MS, lambda: self._warmed(layer))

    def _warmed(self, layer: Points) -> None:
        if layer in self.state.viewer.layers and layer.opacity == 0.0:  # no click has drawn into it yet
            layer.data = np.zeros((0, 2))
            layer.opacity = 1.0

    def show(self, image_id: str, clicks: Sequence[Click]) -> None:
        """The points of ``clicks`` over ``image_id``'s mask (none: the layer is emptied, not added)."""
        self._draw(image_id, clicks, create=bool(clicks))

    def _draw(self, image_id: str, clicks: Sequence[Click], create: bool, points: np.ndarray | None = None) -> Points | None:
        viewer = self.state.viewer
        layer = self.layer_of(image_id)
        if layer is None and not create:
            return None
        image = layers.find_layer(viewer, image_id)
        mask = layers.labels_of(viewer, image)
        if image is None or mask is None:
            return None
        if points is None:
            points = np.array([[c.row, c.col] for c in clicks], float).reshape(-1, 2)
        colours = [GROW if c.positive else SHRINK for c in clicks]
        active = viewer.layers.selection.active
        if layer is None:
            layer = viewer.add_points(points, name=MARKS, size=max(4.0, 0.012 * max(image.data.shape[:2])),
                                      face_color=colours or "white", border_color="white", border_width=0.1,
                                      metadata={layers.PAIR_KEY: image_id})
        else:
            layer.data = points
            if colours:
                layer.face_color = colours
            layer.opacity = 1.0
        layers.follow(layer, scale=image.scale, translate=image.translate, visible=True)
        _place_above(viewer, mask, layer)
        if active is not None and active.unique_id != viewer.layers.selection.active.unique_id:
            viewer.layers.selection.active = active  # the mask keeps the clicks (a new layer took the selection)
        return layer

    def clear(self, image_id: str | None) -> None:
        if image_id is not None:
            self.show(image_id, ())


def _place_above(viewer: Any, below: Any, layer: Any) -> None:
    here, target = layers.index_of(viewer, layer), layers.index_of(viewer, below)
    if here != target + 1:
        viewer.layers.move(here, target + 1 if here > target else target)
