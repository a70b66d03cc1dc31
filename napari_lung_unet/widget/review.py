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

from ..store.worklist import EDITED, NEW, PROPOSED, Case, Worklist
from . import layers, strings
from .ask import ask_to_replace
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
        # the open case owed a proposal (the object: names repeat across worklists), whether it may replace the mask,
        # and the mask's generation when that was allowed (an answer 'replace' covers no stroke made after it)
        self._owed: tuple[Case, bool, int] | None = None
        self._written: ProposalResult | None = None  # the last proposal put into a mask
        self._kept: int | None = None  # the token of a case whose edits were kept through a convention switch
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
        """Propose for ``image`` (default: the reviewed one); over the clinician's edits only after a yes."""
        if (image is None or image.unique_id == self.state.image_id) and self.state.has_edits():
            name = strings.short_name(model or self.state.model or "the current model")
            ask_to_replace(self.state, strings.WHAT_PROPOSAL.format(model=name),
                           lambda: self.runner.propose(model=model, image=image), self._say_kept)
            return None
        return self.runner.propose(model=model, image=image)

    def choose_convention(self, convention: str | None) -> None:
        """The clinician picked a convention for the worklist: an edited case is asked about first."""
        state = self.state
        if convention == state.convention:
            return
        if state.reviewing_case() and state.auto_propose and state.has_edits():
            token = state.life.token

            def keep() -> None:
                self._kept = token  # this case keeps its mask and the convention it was drawn in
                state.set_convention(convention)
                self._say_kept()

            ask_to_replace(state, strings.WHAT_CONVENTION.format(convention=convention or "the model's own"),
                           lambda: state.set_convention(convention), keep)
            return
        state.set_convention(convention)

    def _say_kept(self) -> None:
        state = self.state
        name = strings.short_name(state.case.case_id if state.reviewing_case() else (state.image().name if state.image() else ""))
        drawn, wanted = state.mask_convention(), state.convention
        line = (strings.KEPT_EDITS.format(name=name, drawn=drawn, wanted=wanted) if wanted and wanted != drawn
                else strings.KEPT_EDITS_PLAIN.format(name=name))
        state.status.emit(line)

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
        """Back to the proposal; an edited mask only after a yes (Escape keeps the edits)."""
        if self.state.has_edits():
            ask_to_replace(self.state, strings.WHAT_RESET, self._reset, self._say_kept)
            return
        self._reset()

    def _reset(self) -> None:
        self.edits.reset_to_proposal()
        self.refine.forget(self.state.image_id)  # back to the proposal: earlier clicks no longer count

    def save_draft_now(self, timeout: float | None = 60.0) -> None:
        """Write pending edits and wait until they are on disk (closing napari; tests)."""
        self.edits.flush()
        self.state.writer.wait(timeout)

    # -- proposals coming back ------------------------------------------------------------
    def on_proposal(self, result: ProposalResult) -> None:
        """Put a proposal into its own image's mask (and cache it, for a worklist case).

        Dropped, and logged, when it no longer fits the screen: its case closed (token), or the mask
        changed while it ran (generation: painted meanwhile, or another proposal came first).
        """
        state = self.state
        if result.worklist is not None and not self._of_open_worklist(result):
            return  # its worklist was closed; the image layer may now show another worklist's case
        case = self._case_of(result)
        prediction = result.prediction
        if case is not None and not self._current(result):
            return  # asked before the worklist's convention changed: never shown or cached; one is owed
        if case is not None:
            if case is not state.case or state.life.stale(f"proposal for {case.case_id}", result.token, result.image_id, result.generation):
                # the clinician moved on, or painted meanwhile: it waits on disk for their return, unless
                # their mask (an edit, an accept) was drawn on an earlier proposal, which must stay its base:
                # a draft is always read in the convention of the proposal cached beside it
                if case.status in (NEW, PROPOSED):
                    state.record_proposal(case, prediction.labels, prediction.model_version, prediction.confidence,
                                          prediction.convention, drop_draft=True, heat=result.heat)
                return
            state.record_proposal(case, prediction.labels, prediction.model_version, prediction.confidence, prediction.convention,
                                  heat=result.heat)
            self.navigation.read_next()
        image = layers.find_layer(self.viewer, result.image_id)
        if not isinstance(image, Image):
            return  # the image was closed while its proposal ran
        if case is not None and not state.is_case_image(image):
            return
        if state.life.stale(f"proposal for {image.name}", None, image.unique_id, result.generation):
            state.status.emit(strings.PROPOSAL_DROPPED.format(name=strings.short_name(image.name)))
            return
        layer = layers.labels_of(self.viewer, image)
        had_mask = layer is not None and image.unique_id in state.proposed
        edited = had_mask or (case is not None and case.status == EDITED)
        # undo may bring back the mask it replaces only when that was drawn in the same convention:
        # an undone convention switch would otherwise put one convention's mask under the other's name
        same = state.life.drawn_in.get(image.unique_id) in (None, prediction.convention)
        state.set_proposal(image.unique_id, result.labels, prediction.model_version, prediction.confidence, prediction.convention,
                           result.place, result.heat)
        self.refine.proposed(result)  # its Prediction serves the clicks on this mask
        layer = self.display.show_labels(image, result.labels, undoable=edited and same)
        state.mask_shown(image.unique_id, prediction.convention)
        self._written = result
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
        if self.runner.propose() is None and self.state.running and self.state.case is not None:
            self._owe(over_mask=False)

    def _owe(self, over_mask: bool) -> None:
        assert self.state.case is not None
        self._owed = (self.state.case, over_mask, self._generation())

    def _generation(self) -> int:
        """The reviewed mask's generation: it changes with every stroke, proposal and refine written into it."""
        return self.state.life.generation(self.state.image_id or "")

    def _ask_again(self) -> None:
        """The owed proposal would replace strokes made after the clinician's 'replace': ask about those."""
        state, token = self.state, self.state.life.token
        convention = state.convention or "the model's own"

        def keep() -> None:
            self._kept = token  # this case keeps its mask and the convention it was drawn in
            self._say_kept()

        ask_to_replace(state, strings.WHAT_CONVENTION.format(convention=convention), self.runner.propose, keep)

    def _on_convention_changed(self, _convention: object) -> None:
        """The open case is proposed again in the worklist's new convention, now or after the running one
        (unless the clinician chose to keep its edits)."""
        if not (self.state.reviewing_case() and self.state.auto_propose) or self._kept == self.state.life.token:
            return
        if self.state.running:  # its result is dropped (_current); the last choice is proposed after it
            self._owe(over_mask=True)
        else:
            self.runner.propose()

    def _pay_owed(self, result: ProposalResult | None) -> None:
        """After each run: the open case gets the proposal it is owed, unless this run delivered it."""
        owed, self._owed = self._owed, None
        state, case = self.state, self.state.case
        if owed is None or case is None or case is not owed[0] or not state.reviewing_case() or not state.auto_propose:
            return
        if result is not None and result is self._written and self._case_of(result) is case:
            return  # the run that ended was this case's, and it is shown
        over_mask = owed[1]
        if over_mask and self._generation() != owed[2] and state.has_edits():
            self._ask_again()  # painted after the answer that allowed the replacement: it did not cover these strokes
            return
        layer = state.labels_layer()
        if not over_mask and (state.proposal() is not None or (layer is not None and layer.data.any())):
            return  # it has a mask by now (painted meanwhile): nothing to propose over
        self.runner.propose()
