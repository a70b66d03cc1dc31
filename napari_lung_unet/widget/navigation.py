"""Moving through a worklist: open a folder, open a case (draft > cached proposal > new proposal),
Previous / Next, Skip, and what opens after an Accept.

The next case's file is read ahead in the background (:mod:`.read_ahead`); the open case's edits
are queued as its draft before another case opens; nothing here writes a file itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning

from ..images.read import ImageError, read_xray
from ..store.worklist import ACCEPTED, EDITED, NEW, PROPOSED, SKIPPED, Case, Worklist, WorklistError
from . import layers, strings
from .display import Display
from .dock_state import DockState
from .edits import Edits
from .read_ahead import ReadAhead


class Navigator:
    def __init__(self, state: DockState, display: Display, edits: Edits, propose: Callable[[], object]) -> None:
        self.state, self.display, self.edits = state, display, edits
        self._propose = propose
        self.read_ahead = ReadAhead()

    def open_folder(self, folder: str | Path) -> bool:
        self.edits.flush()
        try:
            worklist = Worklist(folder)
        except (WorklistError, OSError) as exc:
            show_error(strings.ERROR_PREFIX + str(exc))
            return False
        if worklist.load_error:
            show_warning(strings.ERROR_PREFIX + worklist.load_error)
        self.display.remember_view()
        self.display.forget_views()
        self.state.open_worklist(worklist)
        self.open_case(worklist.current)
        return True

    def step(self, direction: int) -> bool:
        if self.state.worklist is None:
            show_info(strings.NO_CASE)
            return False
        index = self.neighbour(direction)
        if index is None:
            show_info(strings.END_OF_LIST)
            return False
        return self.open_case(index)

    def neighbour(self, direction: int) -> int | None:
        """The case Next (+1) or Previous (-1) opens, honouring "Only unreviewed"."""
        worklist = self.state.worklist
        assert worklist is not None
        return worklist.step(worklist.current, direction, unreviewed_only=self.state.only_unreviewed)

    def read_next(self) -> None:
        """Start reading the case Next opens, while the clinician works on this one.

        Called once the open case is settled (shown, and its proposal back): a read competing
        with the proposal for the two cores would slow the proposal the clinician waits for.
        """
        index = self.neighbour(1) if self.state.worklist is not None else None
        if index is not None:
            self.read_ahead.request(self.state.worklist.cases[index].path)

    def open_case(self, index: int) -> bool:
        """Queue the open case's edits, then show case ``index`` (draft > cached proposal > new proposal)."""
        state = self.state
        worklist = state.worklist
        assert worklist is not None
        self.edits.flush()
        self.display.remember_view()
        case = state.select_case(index)
        try:
            xray = self.read_ahead.take(case.path) or read_xray(case.path)
        except ImageError as exc:
            self._show_unreadable(case, exc)
            return False
        state.set_case_error(case, None)
        if xray.colour:
            show_info(strings.RGB_CONVERTED.format(case_id=case.case_id))
        shape = xray.pixels.shape
        # what the writer was asked to write counts, even if it is not on disk yet (an accept in flight)
        proposal = state.load_mask(worklist.proposal_path(case.case_id), shape)
        draft = state.load_mask(worklist.draft_path(case.case_id), shape)
        elsewhere = ""  # the other convention a kept mask of this case was drawn in
        if proposal is not None and state.drawn_elsewhere(case):
            edited = draft is not None and not np.array_equal(draft, proposal)
            if edited or case.status == ACCEPTED:
                elsewhere = case.proposal_convention  # the clinician's mask is never dropped; the status line says so
            else:  # untouched: proposed again in the worklist's convention, never shown stale
                state.forget_proposal(case)
                proposal = draft = None
        labels = draft if draft is not None else proposal
        image = self.display.show_image(xray)
        state.set_case(xray, image, proposal)
        self.display.show_labels(image, labels if labels is not None else np.zeros(shape, np.uint8), undoable=False)
        if labels is None and state.auto_propose:
            state.mask_shown(image.unique_id, None)
            state.case_waits_for_proposal()  # Accept waits until the proposal is shown
        else:
            edited = draft is not None and proposal is not None and not np.array_equal(draft, proposal)
            state.mask_shown(image.unique_id, case.proposal_convention if labels is not None else None,
                             edited=edited or (proposal is None and draft is not None))
        layers.raise_pair(state.viewer, image)  # image layers opened earlier must not cover the case
        self.display.isolate_case()  # one patient on screen
        self.display.fit_case(case.case_id, image)
        if draft is not None and case.status in (NEW, PROPOSED, EDITED) and proposal is not None:
            if not np.array_equal(draft, proposal):
                show_info(strings.DRAFT_RESTORED.format(case_id=case.case_id))
        self.display.refresh_info()
        if labels is not None or not state.auto_propose:
            self.display.say_next_step()  # else the proposal's own lines follow at once
        if elsewhere:
            line = strings.ACCEPTED_ELSEWHERE if case.status == ACCEPTED else strings.EDITS_ELSEWHERE
            state.status.emit(line.format(case_id=case.case_id, drawn=elsewhere, wanted=state.convention))
        state.case_refreshed.emit(case)
        state.case_opened.emit(case)
        if labels is None and state.auto_propose:
            self._propose()  # read_next follows when the proposal is back
        else:
            self.read_next()
        return True

    def _show_unreadable(self, case: Case, exc: ImageError) -> None:
        """A case that cannot be read: flag it, and take the previous case's picture off the screen."""
        state = self.state
        state.set_case_error(case, str(exc))
        state.close_case()  # nothing to accept until a readable case opens
        self.display.hide_case()
        state.case_refreshed.emit(case)
        message = strings.CASE_UNREADABLE.format(case_id=case.case_id, error=exc)
        state.status.emit(message)
        show_error(strings.ERROR_PREFIX + message)

    def skip(self) -> None:
        state = self.state
        if not state.reviewing_case():
            show_info(strings.NO_SKIP if state.worklist else strings.NO_CASE)
            return
        self.edits.flush()
        state.set_status(state.case, SKIPPED)
        self.advance()

    def advance(self, leaving: Case | None = None) -> None:
        """After Accept or Skip: the next case, else the first unreviewed one (uncertain first)."""
        worklist = self.state.worklist
        assert worklist is not None
        index = self.neighbour(1)
        if index is None:
            index = worklist.first_unreviewed(uncertain_first=True)
        if index is not None and worklist.cases[index] is leaving:
            index = None  # the case being accepted is not "unreviewed", its write is just in flight
        if index is None:
            show_info(strings.ALL_DONE)
            return
        self.open_case(index)
