"""What the viewer shows of the review: the case's X-ray, each image's own mask, the model line.

Masks reach the viewer only through :mod:`.layers`, which pairs each labels layer with one
image. The worklist's layers are *reused*: the ``x-ray`` Image and ``lungs`` Labels layers get
new data for each case instead of being removed and re-added. Under Xvfb + Mesa, napari 0.9.2
segfaulted in ``glDrawArrays`` when a Labels layer's data was set, the layers cleared and a
20-Mpx image and labels added; updating data in place avoids tearing down the GL visuals.

One patient on screen: while the open case is reviewed, every other layer is hidden, and exactly
those come back when another image is reviewed. Each case is fitted to the canvas as it opens,
unless the clinician zoomed or panned on that case before: then their view of it comes back.
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
        self._hidden: set[str] = set()  # unique ids of the layers hidden to show one patient
        self._fitted: tuple[str, tuple[float, ...], float] | None = None  # (case id, centre, zoom) as fitted
        self._views: dict[str, tuple[tuple[float, ...], float]] = {}  # case id -> the clinician's own view

    def prepare_pair(self, later: Callable[[Callable[[], None]], None]) -> None:
        """Before a worklist's first case is read: its X-ray and mask layers, empty and hidden.

        Creating napari's first two layers costs the GUI thread about 200 ms each (their controls,
        their visuals), however small the data. Made one per turn of the event loop while the first
        case is read, they are filled when it arrives, as every later case fills them, instead of
        being created together in the one turn that shows it (a 0.4-1 s freeze on a 20-Mpx X-ray).
        ``later(run)`` runs ``run`` on a later turn.
        """
        if layers.find_layer(self.viewer, self.state.xray_id) is not None:
            return
        empty = np.zeros((2, 2), np.uint8)
        image = self.viewer.add_image(empty, name=strings.XRAY_LAYER, colormap="gray", visible=False)
        self.state.xray_id = image.unique_id

        def mask() -> None:
            if image in self.viewer.layers and layers.labels_of(self.viewer, image) is None:
                labels = layers.put_labels(self.viewer, image, empty.copy(), layers.labels_name(image.name, True),
                                           undoable=False)
                labels.visible = image.visible  # still hidden, unless the case was shown meanwhile

        later(mask)

    def new_texture(self, xray: XRay) -> bool:
        """Whether showing ``xray`` gives the worklist's image layer a new size (a new texture to allocate)."""
        layer = layers.find_layer(self.viewer, self.state.xray_id)
        return isinstance(layer, Image) and layer.data.shape != xray.pixels.shape

    def show_image(self, xray: XRay) -> Image:
        """The case's pixels in the worklist's one reused Image layer (already there: nothing is redone)."""
        layer = layers.find_layer(self.viewer, self.state.xray_id)
        if isinstance(layer, Image) and layer.ndim == 2 and not layer.rgb:
            if layer.data is not xray.pixels:  # a new size's pixels went up a turn earlier (Navigator._case_read)
                layer.data = xray.pixels
                layer.reset_contrast_limits()
        else:
            layer = self.viewer.add_image(xray.pixels, name=strings.XRAY_LAYER, colormap="gray")
        layers.follow(layer, scale=xray.scale, visible=True)
        return layer

    # -- one patient, fitted ------------------------------------------------------------
    def isolate_case(self) -> None:
        """Hide every layer but the case's X-ray and mask (remembering which, to bring them back)."""
        image = layers.find_layer(self.viewer, self.state.xray_id)
        mask = layers.labels_of(self.viewer, image)
        keep = {layer.unique_id for layer in (image, mask) if layer is not None}
        if image is not None:  # what else is paired with the case's image (its refine clicks)
            keep |= {layer.unique_id for layer in self.viewer.layers if layer.metadata.get(layers.PAIR_KEY) == image.unique_id}
        for layer in self.viewer.layers:
            if layer.unique_id not in keep and layer.visible:
                layer.visible = False
                self._hidden.add(layer.unique_id)

    def restore_others(self) -> None:
        """Another image is reviewed: what the case hid comes back (what the user hid stays hidden)."""
        for unique_id in self._hidden:
            layer = layers.find_layer(self.viewer, unique_id)
            if layer is not None:
                layer.visible = True
        self._hidden.clear()

    def remember_view(self) -> None:
        """Before leaving a case: keep the clinician's view of it if they zoomed or panned."""
        if self._fitted is None:
            return
        case_id, centre, zoom = self._fitted
        camera = self.viewer.camera
        if abs(camera.zoom - zoom) > 1e-6 * zoom or not np.allclose(camera.center, centre):
            self._views[case_id] = (tuple(camera.center), float(camera.zoom))

    def fit_case(self, case_id: str, image: Image) -> None:
        """Fit the case's image to the canvas, or bring back the clinician's own view of this case."""
        camera = self.viewer.camera
        if case_id in self._views:
            camera.center, camera.zoom = self._views[case_id]
        else:
            self.viewer.reset_view(layers=[image])  # this image only: hidden ones must not shrink it
        self._fitted = (case_id, tuple(camera.center), float(camera.zoom))

    def forget_views(self) -> None:
        """Another worklist: its case ids are not this one's."""
        self._views.clear()
        self._fitted = None

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
        if self.state.reviewing_case():
            self.isolate_case()
        else:
            self.restore_others()
        self.recount(layer)
        self.refresh_info()
        self.say_next_step()
        if layer is not None:
            self.state.labels_shown.emit(layer)

    def say_next_step(self) -> None:
        """The status line for the reviewed image as it is now (never the idle line over a mask)."""
        layer = self.state.labels_layer()
        has_mask = layer is not None and bool(np.asarray(layer.data).any())
        self.state.status.emit(strings.STATUS_HAS_MASK if has_mask else strings.STATUS_IDLE)

    def refresh_info(self) -> None:
        """The model line of the reviewed image: who proposed its mask, and how sure it was."""
        version, confidence = self.state.proposed_by()
        if version is None:
            self.state.model_info.emit(strings.MODEL_INFO_NONE)
            return
        flag = strings.UNCERTAIN_FLAG if is_uncertain(confidence) else ""
        place = self.state.unsure_place()
        if flag and place:
            flag = strings.CHECK_PLACE.format(place=place)
        version = strings.short_name(version)  # a long fine-tune name must not widen the dock
        self.state.model_info.emit(strings.MODEL_INFO.format(version=version, confidence=confidence or 0.0, flag=flag))
