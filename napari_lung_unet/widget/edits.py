"""Edits of the corrected mask: readouts kept in step, the case's status, and its draft.

Labels edits are heard through ``layer.events.paint`` (brush, fill, polygon, ``data_setitem``)
and ``layer.events.set_data`` (undo and redo write the history straight into the array and only
refresh the layer). "Edited" means "differs from the proposal": painting back to it, or Reset,
is not an edit, and neither is a re-proposal that changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import show_info

from ..store.worklist import EDITED, NEW, PROPOSED
from . import layers, strings
from .dock_state import DockState
from .drafts import DraftAutosaver


class Edits:
    def __init__(self, state: DockState, replacing: Callable[[], bool]) -> None:
        self.state = state
        self._replacing = replacing  # whether the display is putting a mask in a layer right now
        self.drafts = DraftAutosaver(state.writer, state)
        self._watched: set[str] = set()  # unique ids of Labels layers whose paint events we listen to
        state.viewer.layers.events.removed.connect(self._on_layer_removed)

    def watch(self, layer: Labels) -> None:
        # unique_id, not identity: the viewer napari gives a plugin hands out proxies of layers
        if layer.unique_id not in self._watched:
            layer.events.paint.connect(self._on_paint)
            layer.events.set_data.connect(self._on_refresh)
            self._watched.add(layer.unique_id)

    def _is_corrected(self, layer: Any) -> bool:
        corrected = self.state.labels_layer()
        return corrected is not None and corrected.unique_id == layer.unique_id

    def _on_paint(self, event: Any) -> None:
        if self._replacing():
            return  # a proposal put in the layer is no edit; the review settles the status after it
        layer, stats = event.source, self.state.stats
        self._changed(layer)
        if self._is_corrected(layer) and not stats.apply(event.value, layer.data):
            stats.recount(layer.data, self.state.proposal())
        self.edited(layer)

    def _on_refresh(self, event: Any) -> None:
        layer, stats = event.source, self.state.stats
        if self._replacing() or not self._is_corrected(layer):
            return
        areas, changed = stats.areas.copy(), stats.changed
        stats.recount(layer.data, self.state.proposal())  # ~50 ms at 20 Mpx; refreshes are rare
        if changed != stats.changed or not np.array_equal(areas, stats.areas):
            self._changed(layer)
            self.edited(layer)  # an undo or redo (a visibility toggle changes nothing)

    def _changed(self, layer: Labels) -> None:
        """A stroke, an undo or a redo: results computed for the mask before it are stale, and a line
        that described the last refine ("… Ctrl-Z undoes it") no longer does."""
        image_id = layer.metadata.get(layers.PAIR_KEY)
        if image_id:
            self.state.mask_changed(image_id)
        if self.state.last_status.startswith(strings.REFINED_PREFIX) and self._is_corrected(layer):
            self.state.status.emit(strings.STATUS_HAS_MASK)

    def edited(self, layer: Labels) -> None:
        """After any change of a mask: readouts, and for the open case its status and a debounced draft."""
        state = self.state
        if self._is_corrected(layer):
            state.stats_changed.emit()
        case = state.case
        if case is None or not state.is_case_labels(layer):
            return  # another image's mask is never a worklist case's draft
        unchanged = self._is_corrected(layer) and state.stats.proposal is not None and state.stats.changed == 0
        status = PROPOSED if unchanged else EDITED
        state.case_edited(status == EDITED)
        if case.status != status and case.status in (NEW, PROPOSED, EDITED):
            state.set_status(case, status)
        self.drafts.schedule(state.worklist.draft_path(case.case_id), lambda: layer.data)

    def flush(self) -> None:
        """Queue pending edits as the draft now (case switch, layer removal); the writer writes it."""
        self.drafts.flush()

    def _on_layer_removed(self, event: Any) -> None:
        if isinstance(event.value, Labels) and event.value.metadata.get(layers.PAIR_KEY) == self.state.xray_id:
            self.flush()  # the pending save still holds the removed layer's data

    def reset_to_proposal(self) -> None:
        layer, proposal = self.state.labels_layer(), self.state.proposal()
        if proposal is None or layer is None or layer.data.shape != proposal.shape:
            show_info(strings.NO_PROPOSAL)
            return
        changed = np.nonzero(np.asarray(layer.data) != proposal)
        layer.data_setitem(changed, proposal[changed])  # undoable; fires paint -> draft + readouts
