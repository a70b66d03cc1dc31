"""Refine mode: a click on the mask asks the model to redo the lung around it (issue 19).

The gesture. While Refine is on, the corrected labels layer is in napari's pan/zoom mode with one
more mouse-drag callback: a left click is a positive click (lung the proposal missed), a right
click or an Alt-click a negative one (marked lung that is not). A press that moves before its
release is a pan, as in napari's own pan/zoom mode, so the view can still be moved in Refine
mode. napari calls a layer's drag callbacks only for the selected layer, and for the labels tools
only in their own modes, so a callback on pan/zoom is the one way to take clicks without also
painting; picking the brush, the eraser or a lung, or another case opening, ends Refine mode.

The work. The refine (and, on the first click, the network if no Prediction was kept) runs in a
worker (:mod:`.refine_work`); the answer is written with ``layer.data_setitem`` so napari's undo
history has it as one step, and the paint event it fires updates the readouts, the case's status
and its draft like any stroke. Clicks made while one runs are queued and run in order: each
refines the mask the previous one left.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator
from typing import Any

import numpy as np
from napari.layers import Labels
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Signal

from ..nn.refine import Click
from . import layers, strings
from .case_life import log
from .click_marks import ClickMarks
from .dock_state import DockState
from .proposals import request_for
from .refine_work import RefineAnswer, RefineSource, run_refine
from .state import ProposalResult

PAN_ZOOM = "pan_zoom"
CLICK_SLOP = 4  # screen px a press may move and still be a click, not a pan


class RefineTool(QObject):
    mode_changed = Signal(bool)
    refined = Signal(object)  # after each click: the RefineAnswer once it is in the layer, or None

    def __init__(self, state: DockState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.on = False
        self.worker: FunctionWorker | None = None
        self.last_latency: float | None = None  # seconds from the last click to its mask in the layer
        self._layer_id: str | None = None  # the labels layer whose clicks are heard
        self._sources: dict[str, RefineSource] = {}  # image unique_id -> its mask as the model gave it
        self._by_layer: dict[str, RefineSource] = {}  # labels unique_id -> the source its refines came from
        # clicks waiting for the running one: (source, click, labels layer, time clicked, case token)
        self._queue: deque[tuple[RefineSource, Click, str, float, int]] = deque()
        state.labels_shown.connect(lambda _layer: self.set_on(False))  # a new mask opens ready to paint
        self.marks = ClickMarks(state)
        state.case_changed.connect(self._case_changed)  # clicks are never carried to another patient

    # -- the mode ---------------------------------------------------------------------------
    def toggle(self) -> None:
        self.set_on(not self.on)

    def cancel(self) -> None:
        """Drop the queued clicks (a case switch, Refine mode left); a running one is dropped when it returns."""
        self._queue.clear()

    def _case_changed(self) -> None:
        self.cancel()
        self.marks.clear(self.state.xray_id)  # the worklist's reused layers: another patient's clicks start afresh

    def set_on(self, on: bool) -> None:
        if not on:
            self.cancel()
        if on == self.on:
            return
        layer = self.state.labels_layer()
        if on and layer is None:
            self.state.status.emit(strings.REFINE_NO_MASK)
            self.mode_changed.emit(False)
            return
        self._detach()
        self.on = on
        if on:
            self._attach(layer)
        self.mode_changed.emit(on)

    def _attach(self, layer: Labels) -> None:
        image_id = layer.metadata.get(layers.PAIR_KEY)
        if image_id:
            self.marks.ensure(image_id)  # before the mask is made active: adding a layer selects it
        self._layer_id = layer.unique_id
        self.state.viewer.layers.selection.active = layer  # napari sends clicks to the selected layer only
        layer.mode = PAN_ZOOM
        layer.mouse_drag_callbacks.append(self._on_mouse)
        layer.events.mode.connect(self._on_mode)

    def _detach(self) -> None:
        layer = layers.find_layer(self.state.viewer, self._layer_id)
        self._layer_id = None
        if not isinstance(layer, Labels):
            return
        layer.events.mode.disconnect(self._on_mode)
        if self._on_mouse in layer.mouse_drag_callbacks:
            layer.mouse_drag_callbacks.remove(self._on_mouse)
        if layer.mode == PAN_ZOOM:
            layer.mode = "paint"

    def _on_mode(self, event: Any) -> None:
        if event.source.mode != PAN_ZOOM:
            self.set_on(False)  # the clinician picked another tool

    def _on_mouse(self, layer: Labels, event: Any) -> Generator[None, None, None]:
        if layer.mode != PAN_ZOOM or not self.on:
            return
        start = np.asarray(event.pos, float)
        positive = event.button == 1 and "Alt" not in event.modifiers
        yield
        while event.type == "mouse_move":
            if np.hypot(*(np.asarray(event.pos, float) - start)) > CLICK_SLOP:
                return  # a pan
            yield
        row, col = (int(np.floor(v + 0.5)) for v in layer.world_to_data(event.position)[-2:])
        if 0 <= row < layer.data.shape[-2] and 0 <= col < layer.data.shape[-1]:
            self.click(row, col, positive)

    # -- the clicks -----------------------------------------------------------------------------
    def proposed(self, result: ProposalResult) -> None:
        """A proposal is in its image's mask: its Prediction serves that mask's clicks."""
        image = layers.find_layer(self.state.viewer, result.image_id)
        if image is not None:
            self.marks.clear(result.image_id)  # a new mask: the clicks were on the old one
            request = request_for(self.state, image, result.model_version)
            self._sources[result.image_id] = RefineSource(
                result.image_id, self.state.proposed[result.image_id].labels if result.image_id in self.state.proposed else None,
                result.prediction, request, fallback_model=self.state.model)

    def forget(self, image_id: str | None) -> None:
        """Back to the proposal (Reset): earlier clicks and refines no longer count."""
        self._sources.pop(image_id or "", None)
        self.marks.clear(image_id)

    def click(self, row: int, col: int, positive: bool) -> bool:
        """Refine the reviewed image's mask around (row, col), full-size pixels; False if there is no mask."""
        image, layer = self.state.image(), self.state.labels_layer()
        if image is None or layer is None:
            self.state.status.emit(strings.REFINE_NO_MASK)
            return False
        self._queue.append((self._source(image), Click(row, col, positive), layer.unique_id, time.perf_counter(),
                            self.state.life.token))
        self._run_next()
        return True

    def _source(self, image: Any) -> RefineSource:
        proposal = self.state.proposal()
        source = self._sources.get(image.unique_id)
        if source is None or source.proposal is not proposal:  # another case in the reused layer, or a new proposal
            version, _confidence = self.state.proposed_by()
            request = request_for(self.state, image, version or self.state.model)
            source = RefineSource(image.unique_id, proposal, None, request, fallback_model=self.state.model)
            self._sources[image.unique_id] = source
        return source

    def _run_next(self) -> None:
        while self.worker is None and self._queue:
            source, click, layer_id, clicked, token = self._queue.popleft()
            layer = layers.find_layer(self.state.viewer, layer_id)
            if not isinstance(layer, Labels) or token != self.state.life.token:
                continue
            self.state.status.emit(strings.REFINING)
            # snapshots: the brush and undo change the live arrays on this thread while the worker reads
            snapshot = np.array(layer.data, copy=True)
            said = np.array(source.said.said, copy=True) if source.said is not None else None
            generation = self.state.life.generation(source.image_id)
            worker = create_worker(
                run_refine, source, click, snapshot, layer_id, said, _start_thread=False,
                _connect={"returned": lambda answer, t=clicked, k=token, g=generation: self._write(answer, t, k, g),
                          "errored": self._failed,
                          "finished": self._finished},
            )
            self.worker = worker
            worker.start()

    def _write(self, answer: RefineAnswer, clicked: float, token: int, generation: int) -> None:
        layer = layers.find_layer(self.state.viewer, answer.layer_id)
        source = answer.source
        if not isinstance(layer, Labels) or self._sources.get(source.image_id) is not source or token != self.state.life.token:
            log.info("refine at %s dropped: its mask or case was replaced while it ran", (answer.click.row, answer.click.col))
            self.refined.emit(None)
            return
        if self.state.life.stale("refine", None, source.image_id, generation):  # a stroke or an undo came first
            self.state.status.emit(strings.REFINE_DROPPED)
            self.refined.emit(None)
            return
        # merged only where the mask still holds what the refine saw: a stroke painted meanwhile wins
        held = np.asarray(layer.data[answer.indices]) == answer.before
        indices = (answer.indices[0][held], answer.indices[1][held])
        values = answer.values[held]
        old = np.array(layer.data[indices], copy=True)
        if values.size:
            layer.data_setitem(indices, values)  # one undoable step; its paint event updates the readouts
        assert source.said is not None
        del source.clicks[source.said.live:]  # clicks undone before this one are gone from napari's redo list too
        source.said.refined(indices, old, values)
        source.clicks.append(answer.click)
        self.marks.show(source.image_id, source.clicks[: source.said.live])
        if layer.unique_id not in self._by_layer:
            layer.events.set_data.connect(self._on_history)
        self._by_layer[layer.unique_id] = source
        self.last_latency = time.perf_counter() - clicked
        added = int(np.count_nonzero(values)) if answer.click.positive else -int(np.count_nonzero(old))
        self.state.status.emit(strings.REFINED.format(pixels=added, ms=1000 * self.last_latency))
        self.refined.emit(answer)

    def _on_history(self, event: Any) -> None:
        """An undo or redo: a refine it took back is no longer what the model said there."""
        layer = event.source
        source = self._by_layer.get(layer.unique_id)
        if source is not None and source.said is not None and source.said.shape == layer.data.shape:
            source.said.follow_history(layer.data)
            self.marks.show(source.image_id, source.clicks[: source.said.live])

    def _failed(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        self.state.status.emit(strings.STATUS_FAILED.format(message=message))
        show_error(strings.ERROR_PREFIX + message)
        self.refined.emit(None)

    def _finished(self) -> None:
        self.worker = None
        self._run_next()
        if self.worker is None and self.state.last_status == strings.REFINING:
            # its answer was dropped (Reset, a new proposal or mask while it ran) and nothing said so since:
            # the line never tells of work that has ended
            self.state.status.emit(strings.REFINE_DROPPED_REPLACED)
