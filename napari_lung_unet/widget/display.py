"""What the viewer shows of the review: the case's X-ray, each image's own mask, the model line.

Masks reach the viewer only through :mod:`.layers`, which pairs each labels layer with one
image. The worklist's layers are *reused*: the ``x-ray`` Image and ``lungs`` Labels layers get
new data for each case instead of being removed and re-added. Under Xvfb + Mesa, napari 0.9.2
segfaulted in ``glDrawArrays`` when a Labels layer's data was set, the layers cleared and a
20-Mpx image and labels added; updating data in place avoids tearing down the GL visuals.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from napari.layers import Image, Labels

from ..images.read import XRay
from ..store.worklist import is_uncertain
from . import layers, strings
from .dock_state import DockState


class Display:
    def __init__(self, state: DockState, watch: Callable[[Labels], None]) -> None:
        self.state = state
        self.viewer = state.viewer
        self._watch = watch  # the edits part listens to every mask the dock writes
        self.replacing_labels = False  # True while a mask is put in a layer (not an edit)

    def show_image(self, xray: XRay) -> Image:
        """The case's pixels in the worklist's one reused Image layer."""
        layer = layers.find_layer(self.viewer, self.state.xray_id)
        reshaped = layer is None or layer.data.shape != xray.pixels.shape
        if isinstance(layer, Image) and layer.ndim == 2 and not layer.rgb:
            layer.data = xray.pixels
            layer.reset_contrast_limits()
        else:
            layer = self.viewer.add_image(xray.pixels, name=strings.XRAY_LAYER, colormap="gray")
        layers.follow(layer, scale=xray.scale, visible=True)
        if reshaped:
            self.viewer.reset_view()
        return layer

    def show_labels(self, image: Image, labels: np.ndarray, undoable: bool) -> Labels:
        """Put a mask in ``image``'s own labels layer and make that layer the one being corrected."""
        if not undoable:  # a whole new array for the layer: painting must never alter a cached proposal
            labels = np.array(labels, dtype=np.uint8, copy=True)
        name = layers.labels_name(image.name, worklist=image.unique_id == self.state.xray_id)
        self.replacing_labels = True
        try:
            layer = layers.put_labels(self.viewer, image, labels, name, undoable=undoable)
        finally:
            self.replacing_labels = False
        self._watch(layer)
        if image.unique_id == self.state.image_id:
            self.viewer.layers.selection.active = layer  # labels_shown below puts it in paint mode
            self.recount(layer)
            self.state.labels_shown.emit(layer)
        return layer

    def recount(self, layer: Labels | None) -> None:
        """Readouts from scratch for the corrected mask (a case opened, a proposal arrived)."""
        self.state.stats.recount(layer.data if layer is not None else np.zeros(0, np.uint8), self.state.proposal())
        self.state.stats_changed.emit()

    def hide_case(self) -> None:
        """Take an unreadable case's predecessor off the screen (hidden, not removed: the layers are reused)."""
        image = layers.find_layer(self.viewer, self.state.xray_id)
        for layer in (image, layers.labels_of(self.viewer, image)):
            if layer is not None:
                layer.visible = False
        self.recount(None)
        self.state.model_info.emit(strings.MODEL_INFO_NONE)

    def on_image_changed(self) -> None:
        """Another image is reviewed: the readouts, model line and controls follow its own mask."""
        layer = self.state.labels_layer()
        self.recount(layer)
        self.refresh_info()
        if layer is not None:
            self.state.labels_shown.emit(layer)

    def refresh_info(self) -> None:
        """The model line of the reviewed image: who proposed its mask, and how sure it was."""
        version, confidence = self.state.proposed_by()
        if version is None:
            self.state.model_info.emit(strings.MODEL_INFO_NONE)
            return
        flag = strings.UNCERTAIN_FLAG if is_uncertain(confidence) else ""
        self.state.model_info.emit(strings.MODEL_INFO.format(version=version, confidence=confidence or 0.0, flag=flag))
