"""The dock's one state object (in the spirit of micro-sam's annotator state).

It holds which image is being reviewed, which worklist case is open, which labels layer is being
corrected, which model proposes, and what is running. Panels read it and change it through its
methods, and listen to its signals; none of them keeps its own copy. It imports no other widget
module except the pairing rule and plain data, so nothing can import it back in a loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtCore import QObject, Signal

from ..images.read import XRay
from ..nn.registry import Registry
from ..store.worklist import Case, Worklist
from . import layers
from .current import read_current
from .state import ProposalResult

if TYPE_CHECKING:
    import napari


class DockState(QObject):
    image_changed = Signal()  # another image is the one being reviewed
    case_changed = Signal()  # a case opened or closed, or a folder opened
    running_changed = Signal(bool)  # a proposal started (True) or ended (False)
    models_changed = Signal()  # the registry changed: a promotion, a new version, a rollback

    def __init__(self, viewer: napari.Viewer, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.image_id: str | None = None  # the reviewed Image layer's unique_id
        self.worklist: Worklist | None = None
        self.case: Case | None = None  # the open worklist case (None: no case, or it was unreadable)
        self.xray: XRay | None = None  # the open case's pixels, spacing and path
        self.xray_id: str | None = None  # unique_id of the worklist's reused Image layer
        self.proposals: dict[str, np.ndarray] = {}  # image unique_id -> the model's last proposal for it
        self.model: str | None = None  # the user's pick: a version or a path; None = the registry's current
        self.device = "auto"
        self.auto_propose = True
        self.only_unreviewed = False
        self.running = False  # a proposal is running
        self.last_result: ProposalResult | None = None
        self.last_error: str | None = None
        self.history: list[str] = []  # model versions used, oldest first

    # -- the image and its mask -----------------------------------------------------
    def image(self) -> Image | None:
        layer = layers.find_layer(self.viewer, self.image_id)
        return layer if isinstance(layer, Image) else None

    def set_image(self, layer: Image | None) -> None:
        new = layer.unique_id if layer is not None else None
        if new != self.image_id:
            self.image_id = new
            self.image_changed.emit()

    def labels_layer(self) -> Labels | None:
        """The labels layer being corrected: the one paired with the reviewed image."""
        return layers.labels_of(self.viewer, self.image())

    def proposal(self) -> np.ndarray | None:
        return self.proposals.get(self.image_id) if self.image_id else None

    # -- the worklist case ----------------------------------------------------------
    def is_case_image(self, layer: Any | None) -> bool:
        """Whether ``layer`` is the worklist's image while a readable case is open."""
        return self.case is not None and layer is not None and layer.unique_id == self.xray_id

    def is_case_labels(self, layer: Any | None) -> bool:
        return self.case is not None and layer is not None and layer.metadata.get(layers.PAIR_KEY) == self.xray_id

    def reviewing_case(self) -> bool:
        """Whether the reviewed image is the open worklist case (Skip and Next mean something)."""
        return self.is_case_image(self.image())

    def case_id_for(self, layer: Any | None) -> str | None:
        return self.case.case_id if self.is_case_image(layer) else None

    def open_worklist(self, worklist: Worklist) -> None:
        self.worklist = worklist
        self.close_case()

    def set_case(self, case: Case, xray: XRay, image: Image, proposal: np.ndarray | None) -> None:
        self.case, self.xray, self.xray_id = case, xray, image.unique_id
        self._set_proposal(image.unique_id, proposal)
        self.case_changed.emit()
        self.set_image(image)  # the reused x-ray layer is usually reviewed already: no re-emit

    def close_case(self) -> None:
        """No readable case is open (a failed read, or a folder just opened)."""
        self.case = self.xray = None
        if self.xray_id is not None:
            self.proposals.pop(self.xray_id, None)
        self.case_changed.emit()

    def set_proposal(self, image: Any, proposal: np.ndarray | None) -> None:
        self._set_proposal(image.unique_id, proposal)

    def _set_proposal(self, image_id: str, proposal: np.ndarray | None) -> None:
        if proposal is None:
            self.proposals.pop(image_id, None)
        else:
            self.proposals[image_id] = proposal

    # -- the model ------------------------------------------------------------------
    def set_model(self, model: str | None) -> None:
        self.model = model or None

    def registry_changed(self) -> None:
        """A promotion, a new candidate or a rollback: the Model box follows the registry's current."""
        self.model = None
        self.models_changed.emit()

    def current_model(self) -> str | None:
        """The registry's current version, or None while models/CURRENT is damaged."""
        return read_current(Registry())[0]

    # -- what is running ------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self.running = running
        self.running_changed.emit(running)
