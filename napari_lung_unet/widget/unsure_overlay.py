"""The dock's "Show where unsure" overlay (issue 29): a heat map of where the model doubted the
reviewed image's proposal, on top of the X-ray, toggled by one checkbox.

The map is the proposal worker's (``Proposed.heat``, at the network's size, so a 20-Mpx X-ray costs
no full-size array); the layer is stretched onto the X-ray by its scale. A worklist caches the map
beside the proposal; a case opened from that cache gets it back from the writer's thread, never
from the GUI thread, and with it the place the model line names ("⚠ check the lower left lung").
Off by default: the review shows the X-ray and its mask only until the clinician asks for more.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import imageio.v3 as iio
import numpy as np
from qtpy.QtCore import QObject
from qtpy.QtWidgets import QCheckBox

from . import layers, strings
from .quality_hint import HINT_SUFFIX, heat_from_png, place_of

if TYPE_CHECKING:
    from .dock_state import DockState, Proposed

log = logging.getLogger(__name__)
OPACITY = 0.6


class UnsureOverlay(QObject):
    def __init__(self, state: DockState, refresh_info: Callable[[], None]) -> None:
        super().__init__()
        self.state = state
        self._refresh_info = refresh_info  # the model line, once a cached proposal's place is known
        self.toggle = QCheckBox(strings.SHOW_UNSURE)
        self.toggle.setToolTip(strings.SHOW_UNSURE_TIP)
        self.toggle.toggled.connect(lambda _on: self.update())
        state.case_changed.connect(self._read_cached)
        state.model_info.connect(lambda _line: self.update())  # every change of the reviewed proposal says so there
        state.image_changed.connect(self.update)

    def layer(self) -> Any | None:
        for layer in self.state.viewer.layers:
            if is_overlay(layer):
                return layer
        return None

    def update(self) -> None:
        """Show the reviewed proposal's map when the box is ticked; hide it while there is none; remove it when unticked."""
        viewer, layer = self.state.viewer, self.layer()
        if not self.toggle.isChecked():
            if layer is not None:
                viewer.layers.remove(layer)
            return
        entry, image = self.state.reviewed_proposal(), self.state.image()
        if (entry is None or entry.heat is None or image is None or not image.visible
                or tuple(image.data.shape[-2:]) != entry.labels.shape[-2:]):
            if layer is not None:
                layer.visible = False  # nothing known for this image (yet), or it left the screen: never another patient's map
            return
        heat = entry.heat
        factor = np.array(entry.labels.shape[-2:], float) / np.array(heat.shape, float)
        pixel = np.asarray(image.scale[-2:], float)
        scale = tuple(pixel * factor)
        # pixel centres: a network pixel covers `factor` image pixels, its centre lies half a block in
        translate = tuple(np.asarray(image.translate[-2:], float) + (factor - 1.0) / 2.0 * pixel)
        active = viewer.layers.selection.active
        name = f"{image.name}{HINT_SUFFIX}"
        if layer is None:
            layer = viewer.add_image(heat, name=name, colormap="inferno", blending="additive", opacity=OPACITY,
                                     contrast_limits=(0.0, 1.0), scale=scale, translate=translate,
                                     metadata={KEY: True, layers.PAIR_KEY: image.unique_id})
        else:
            if layer.data is not heat:
                layer.data = heat
            layers.follow(layer, scale=scale, translate=translate, name=name, visible=True)
            layer.metadata[layers.PAIR_KEY] = image.unique_id
        top = len(viewer.layers) - 1
        if layers.index_of(viewer, layer) != top:
            viewer.layers.move(layers.index_of(viewer, layer), top + 1)  # over the X-ray, its mask and the click marks
        if active is not None and active.unique_id != viewer.layers.selection.active.unique_id:
            viewer.layers.selection.active = active  # the mask stays the layer painted on

    def _read_cached(self) -> None:
        """A case opened with its cached proposal: its map (and so its place) comes back from the writer's thread."""
        state = self.state
        entry, worklist, case = state.reviewed_proposal(), state.worklist, state.case
        if entry is None or entry.heat is not None or worklist is None or case is None or not state.reviewing_case():
            return
        image_id = state.image_id
        state.writer.submit(_read_heat, worklist.unsure_path(case.case_id), entry.labels,
                            returned=lambda got: self._heat_read(image_id, entry, got),
                            errored=lambda exc: log.info("no doubt map for %s: %s", case.case_id, exc))

    def _heat_read(self, image_id: str | None, entry: Proposed, got: tuple[np.ndarray, str] | None) -> None:
        if got is None or self.state.proposed.get(image_id or "") is not entry:
            return  # none cached, or the proposal was replaced meanwhile (a new one carries its own map)
        heat, place = got
        self.state.proposed[image_id or ""] = replace(entry, heat=heat, place=place)
        if image_id == self.state.image_id:
            self._refresh_info()  # names the place; the overlay follows the model line


KEY = "lung_unet_unsure"  # the overlay layer's metadata mark


def is_overlay(layer: Any) -> bool:
    """Whether ``layer`` is this overlay: an Image layer, but never an X-ray to review."""
    return bool(getattr(layer, "metadata", {}).get(KEY))


def _read_heat(path: Path, labels: np.ndarray) -> tuple[np.ndarray, str] | None:
    """On the writer's thread (after the writes queued before it): the cached map and the place it names."""
    try:
        pixels = iio.imread(path)
    except FileNotFoundError:
        return None
    if pixels.ndim != 2:
        raise ValueError(f"{path} is not a grey doubt map")
    heat = heat_from_png(pixels)
    return heat, place_of(heat, labels)
