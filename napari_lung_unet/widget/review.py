"""The review loop, put together from parts that each do one job on the one dock state.

- :mod:`.navigation`: folders, cases, Previous / Next / Skip, reading ahead;
- :mod:`.display`: the X-ray, each image's own mask, the model line;
- :mod:`.edits`: readouts in step with painting, the case's status, its draft;
- :mod:`.decide`: Accept, into the corrections store.

Each reads and changes :class:`.dock_state.DockState` through its methods and tells the panels
what changed through the state's signals; none knows a widget, and none writes a file on the
GUI thread (the dock's :class:`.writer.DiskWriter` does). This class only joins them, and puts a
returned proposal where it belongs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Image
from napari.qt.threading import GeneratorWorker
from qtpy.QtCore import QObject

from ..store.worklist import EDITED, NEW, Case, Worklist
from . import layers
from .decide import Decide
from .display import Display
from .dock_state import DockState
from .edits import Edits
from .navigation import Navigator
from .proposals import ProposalRunner
from .refine_tool import RefineTool
from .state import ProposalResult


class ReviewController(QObject):
    def __init__(self, state: DockState, runner: ProposalRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.runner = runner
        self.viewer = state.viewer
        self.edits = Edits(state, lambda: self.display.replacing_labels)
        self.display = Display(state, self.edits.watch)
        self.navigation = Navigator(state, self.display, self.edits, self._propose_case)
        # (case id, whether over its mask) a proposal the open case is owed once the running one ends
        self._owed: tuple[Case, bool] | None = None  # the open case owed a proposal (the object: names repeat across worklists)
        self.decide = Decide(state, lambda case: self.navigation.advance(leaving=case))
        self.refine = RefineTool(state, self)  # a click redoes the region around it (Refine mode)
        runner.returned.connect(self.on_proposal)
        runner.finished.connect(self._pay_owed)
        state.image_changed.connect(self.display.on_image_changed)
        state.convention_changed.connect(self._on_convention_changed)

    # -- the state's signals and parts, under the names tests and scripts use -----------
    @property
    def case_accepted(self):  # noqa: ANN201 - a bound Qt signal
        return self.state.case_accepted

    @property
    def stored(self):  # noqa: ANN201 - a bound Qt signal
        return self.state.stored

    @property
    def worklist(self) -> Worklist | None:
        return self.state.worklist

    @property
    def case(self) -> Case | None:
        return self.state.case

    @property
    def stats(self):  # noqa: ANN201 - readouts.LungStats
        return self.state.stats

    @property
    def read_ahead(self):  # noqa: ANN201 - read_ahead.ReadAhead
        return self.navigation.read_ahead

    @property
    def auto_propose(self) -> bool:
        return self.state.auto_propose

    @auto_propose.setter
    def auto_propose(self, on: bool) -> None:
        self.state.auto_propose = on

    # -- actions ------------------------------------------------------------------------
    def propose(self, model: str | None = None, image: Image | None = None) -> GeneratorWorker | None:
        return self.runner.propose(model=model, image=image)

    def open_folder(self, folder: str | Path) -> bool:
        return self.navigation.open_folder(folder)

    def open_case(self, index: int) -> bool:
        return self.navigation.open_case(index)

    def step(self, direction: int) -> bool:
        return self.navigation.step(direction)

    def skip(self) -> None:
        self.navigation.skip()

    def accept(self) -> bool:
        return self.decide.accept(self.edits.flush, self.edits.drafts.cancel)

    def reset_to_proposal(self) -> None:
        self.edits.reset_to_proposal()
        self.refine.forget(self.state.image_id)  # back to the proposal: earlier clicks no longer count

    def save_draft_now(self, timeout: float | None = 60.0) -> None:
        """Write pending edits and wait until they are on disk (closing napari; tests)."""
        self.edits.flush()
        self.state.writer.wait(timeout)

    # -- proposals coming back ------------------------------------------------------------
    def on_proposal(self, result: ProposalResult) -> None:
        """Put a proposal into its own image's mask (and cache it, for a worklist case)."""
        state = self.state
        if result.worklist is not None and not self._of_open_worklist(result):
            return  # its worklist was closed; the image layer may now show another worklist's case
        case = self._case_of(result)
        prediction = result.prediction
        if case is not None and not self._current(result):
            return  # asked before the worklist's convention changed: never shown or cached; one is owed
        if case is not None:
            state.record_proposal(case, prediction.labels, prediction.model_version, prediction.confidence, prediction.convention)
            if case is not state.case:
                return  # the clinician moved on; the proposal waits on disk for their return
            self.navigation.read_next()
        image = layers.find_layer(self.viewer, result.image_id)
        if not isinstance(image, Image):
            return  # the image was closed while its proposal ran
        if case is not None and not state.is_case_image(image):
            return
        layer = layers.labels_of(self.viewer, image)
        had_mask = layer is not None and image.unique_id in state.proposed
        edited = had_mask or (case is not None and case.status == EDITED)
        state.set_proposal(image.unique_id, result.labels, prediction.model_version, prediction.confidence, prediction.convention)
        self.refine.proposed(result)  # its Prediction serves the clicks on this mask
        # over edits (a re-proposal): one undoable step, so the clinician can get their mask back
        layer = self.display.show_labels(image, result.labels, undoable=edited)
        # for people reading the layer; never read back
        layer.metadata.update(model_version=prediction.model_version, convention=prediction.convention)
        if edited:
            self.edits.edited(layer)  # against the new proposal: edited, or not (a re-proposal that changed nothing)
        self.display.refresh_info()

    def _of_open_worklist(self, result: ProposalResult) -> bool:
        worklist = self.state.worklist
        return worklist is not None and result.worklist == str(worklist.folder)

    def _case_of(self, result: ProposalResult) -> Case | None:
        worklist = self.state.worklist
        if worklist is None or result.case_id is None or not self._of_open_worklist(result):
            return None  # no case, or one of a worklist closed since: never its same-named case here
        index = worklist.index_of(result.case_id)
        return worklist.cases[index] if index >= 0 else None

    def _current(self, result: ProposalResult) -> bool:
        """Whether ``result`` is drawn in the worklist's convention (None chosen: the model's own, any)."""
        return self.state.convention is None or result.prediction.convention == self.state.convention

    def _propose_case(self) -> None:
        """The open case needs a proposal: now, or once the running one ends (the latest case wins)."""
        if self.propose() is None and self.state.running and self.state.case is not None:
            self._owed = (self.state.case, False)

    def _on_convention_changed(self, _convention: object) -> None:
        """The open case is proposed again in the worklist's new convention, now or after the running one."""
        if not (self.state.reviewing_case() and self.state.auto_propose):
            return
        if self.state.running:  # its result is dropped (_current); the last choice is proposed after it
            self._owed = (self.state.case, True)
        else:
            self.propose()

    def _pay_owed(self, result: ProposalResult | None) -> None:
        """After each run: the open case gets the proposal it is owed, unless this run delivered it."""
        owed, self._owed = self._owed, None
        state, case = self.state, self.state.case
        if owed is None or case is None or case is not owed[0] or not state.reviewing_case() or not state.auto_propose:
            return
        if result is not None and self._case_of(result) is case and self._current(result):
            return  # the run that ended was this case's, in the convention wanted now: it is shown
        over_mask = owed[1]
        layer = state.labels_layer()
        if not over_mask and (state.proposal() is not None or (layer is not None and layer.data.any())):
            return  # it has a mask by now (painted meanwhile): nothing to propose over
        self.propose()
