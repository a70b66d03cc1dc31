"""Moving through a worklist: open a folder, open a case (draft > cached proposal > new proposal),
Previous / Next, Skip, and what opens after an Accept.

Nothing here reads a file on the GUI thread. Opening a folder lists it and reads its state file on
a reader thread (:mod:`.read_ahead`); opening a case reads its X-ray, proposal and draft there too,
or takes them from the cache of neighbours read ahead. Until its pixels are read the case is
*opening*: it is the worklist's current case, nothing of it is on screen (the previous case's
picture is hidden, so no other patient stands under its name), and it is not open (Accept and Skip
refuse). Every request carries a token; a newer request supersedes an older one still reading (the
latest click wins), and a result that arrives for a superseded request is dropped, with a line in
the log. Results reach the GUI thread through :mod:`.delivery` (never after napari's window closed). The open case's edits are queued as its draft before another case opens; nothing here
writes a file itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning

from ..store.worklist import ACCEPTED, EDITED, NEW, PROPOSED, SKIPPED, Case, Worklist, WorklistError
from . import layers, strings
from .case_life import SKIPPED as SKIPPED_PHASE
from .display import Display
from .dock_state import DockState
from .edits import Edits
from .delivery import Delivery
from .read_ahead import CaseFiles, CaseRead, ReadAhead

log = logging.getLogger(__name__)


class Navigator:
    def __init__(self, state: DockState, display: Display, edits: Edits, propose: Callable[[], object]) -> None:
        self.state, self.display, self.edits = state, display, edits
        self._propose = propose
        self.read_ahead = ReadAhead()
        self.opening: Case | None = None  # the case being read, not yet shown
        self._folder_token = 0  # the newest folder request
        self._folder_reading = False  # a folder is being listed
        self._delivery = Delivery(state)  # goes with the dock: a read finishing after it closed is not delivered
        self._when_done = self._delivery.when_done

    @property
    def settled(self) -> bool:
        """No folder or case is being read: what is on screen is what was asked for last."""
        return not self._folder_reading and self.opening is None

    # -- folders ------------------------------------------------------------------------
    def open_folder(self, folder: str | Path) -> bool:
        """Start opening ``folder`` as a worklist; True once asked (its errors are shown when read).

        The folder is listed and its state file read on a reader thread, after the dock's writer
        has written what it was asked to (reopening a folder reads its newest statuses).
        """
        self.edits.flush()
        self._folder_token += 1
        token, writer = self._folder_token, self.state.writer

        def read() -> Worklist:
            writer.wait(None)
            return Worklist(folder)

        self._folder_reading = True
        self.state.status.emit(strings.OPENING_FOLDER.format(folder=Path(folder).name or folder))
        self._when_done(self.read_ahead.submit(read), lambda done: self._folder_read(token, done))
        self.display.prepare_pair(self._delivery.later)  # while the folder and its first case are read
        return True

    def _folder_read(self, token: int, done: Future) -> None:
        if token != self._folder_token:
            log.info("dropped a superseded folder read")
            return
        self._folder_reading = False
        try:
            worklist = done.result()
        except (WorklistError, OSError) as exc:
            show_error(strings.ERROR_PREFIX + str(exc))
            self.state.status.emit(strings.ERROR_PREFIX + str(exc))
            return
        if worklist.load_error:
            show_warning(strings.ERROR_PREFIX + worklist.load_error)
        self.read_ahead.cancel()  # another worklist's cases
        self.display.remember_view()
        self.display.forget_views()
        self.state.open_worklist(worklist)
        self.open_case(worklist.current)

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
        return worklist.step(worklist.current, direction, unreviewed_only=self.state.only_unreviewed,
                             least_sure_first=self.state.least_sure_first)

    def read_next(self) -> None:
        """Start reading the cases Next and Previous open, while the clinician works on this one.

        Called once the open case is settled (shown, and its proposal back): a read competing
        with the proposal for the two cores would slow the proposal the clinician waits for.
        """
        worklist = self.state.worklist
        if worklist is None:
            return
        for direction in (1, -1):  # Next first: the usual way through a worklist
            index = self.neighbour(direction)
            if index is not None:
                self.read_ahead.request(self._files(worklist, worklist.cases[index]))

    @staticmethod
    def _files(worklist: Worklist, case: Case) -> CaseFiles:
        return CaseFiles(case.path, (worklist.proposal_path(case.case_id), worklist.draft_path(case.case_id)))

    def open_case(self, index: int) -> bool:
        """Queue the open case's edits, then start opening case ``index``; True once asked.

        It is shown (draft > cached proposal > new proposal) when its read arrives, unless a newer
        request came meanwhile; ``state.case_opened`` says when.
        """
        state = self.state
        worklist = state.worklist
        assert worklist is not None
        self.edits.flush()
        self.display.remember_view()
        case = state.select_case(index)
        self.display.hide_case()  # one patient on screen: the previous one leaves as this one is named
        self.opening = case
        state.status.emit(strings.OPENING_CASE.format(case_id=case.case_id))
        self._read(state.life.token, worklist, case)  # select_case gave it a new token: older reads are dropped
        return True

    def _read(self, token: int, worklist: Worklist, case: Case) -> None:
        files = self._files(worklist, case)
        cached = self.read_ahead.cached(files)
        future = self.read_ahead.request(files)
        self._when_done(future, lambda done: self._case_read(token, worklist, case, done, cached))

    def _case_read(self, token: int, worklist: Worklist, case: Case, done: Future, cached: bool) -> None:
        state = self.state
        if token != state.life.token or state.worklist is not worklist:
            log.info("dropped a superseded read of %s", case.case_id)
            return
        try:
            read = done.result()
        except CancelledError:  # evicted before it started (many quick clicks): read it now
            self._read(token, worklist, case)
            return
        except Exception as exc:  # noqa: BLE001 - any failure to read is this case's, shown as such
            read = CaseRead(self._files(worklist, case), None, (), (), f"{case.path}: {exc}")
        if not read.unchanged(skip=lambda path: state.writer.pending_mask(path) is not None):
            log.info("%s changed on disk since it was read: reading it again", case.case_id)
            self.read_ahead.forget(read.files)
            self._read(token, worklist, case)
            return
        if read.xray is not None and self.display.new_texture(read.xray):
            # A new size: the X-ray's texture is allocated at the next paint (130-190 ms of the GUI thread for
            # 20 Mpx in software GL), and the mask's at the same paint if it were shown in this turn too. The
            # pixels go up first, the case is shown on the next turn (still opening: Accept waits).
            self.display.show_image(read.xray)
            self._delivery.later(lambda: self._case_ready(token, worklist, case, read, cached))
            return
        self._case_ready(token, worklist, case, read, cached)

    def _case_ready(self, token: int, worklist: Worklist, case: Case, read: CaseRead, cached: bool) -> None:
        if token != self.state.life.token or self.state.worklist is not worklist:
            log.info("dropped a superseded read of %s", case.case_id)
            return
        self.opening = None
        if read.xray is None:
            self._show_unreadable(case, read.error or "unreadable")
            return
        if cached:
            self.read_ahead.hits += 1
        self._show(case, read)

    def _mask(self, path: Path, read: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
        """A mask as the writer has it (still queued: newer than any file), else as it was read."""
        pending = self.state.writer.pending_mask(path)
        if pending is not None:
            return pending if pending.shape == tuple(shape) else None  # empty: queued for removal
        return read

    def _show(self, case: Case, read: CaseRead) -> None:
        """Show the case just read: its pixels, and its draft, else its cached proposal, else a new proposal."""
        state = self.state
        worklist = state.worklist
        assert worklist is not None and read.xray is not None
        xray = read.xray
        state.set_case_error(case, None)
        if xray.colour:
            show_info(strings.RGB_CONVERTED.format(case_id=case.case_id))
        shape = xray.pixels.shape
        # what the writer was asked to write counts, even if it is not on disk yet (an accept in flight)
        proposal_path, draft_path = read.files.masks
        proposal = self._mask(proposal_path, read.masks[0], shape)
        draft = self._mask(draft_path, read.masks[1], shape)
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
        for layer in (image, state.labels_layer()):
            # napari 0.9.2 keeps the extent a layer had when its data changed while hidden (making it
            # visible refreshes without the extent): this case was hidden while it was read, so a
            # case of another size would be fitted to the last one's. The extent only; no new upload.
            if layer is not None:
                layer.refresh(thumbnail=False, data_displayed=False, highlight=False, extent=True)
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

    def _show_unreadable(self, case: Case, exc: str) -> None:
        """A case that cannot be read: flag it, and take the previous case's picture off the screen."""
        state = self.state
        state.set_case_error(case, exc)
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
        state.life.move(SKIPPED_PHASE)  # what it stays in if nothing follows it
        self.advance()

    def advance(self, leaving: Case | None = None) -> None:
        """After Accept or Skip: the next case, else the first unreviewed one (uncertain first)."""
        worklist = self.state.worklist
        assert worklist is not None
        if self.state.least_sure_first:  # the least sure case still to review, wherever it is in the list
            todo = [i for i in worklist.least_sure_first() if i != worklist.current]
            index = todo[0] if todo else None
        else:
            index = self.neighbour(1)
        if index is None:
            index = worklist.first_unreviewed(uncertain_first=True)
        if index is not None and worklist.cases[index] is leaving:
            index = None  # the case being accepted is not "unreviewed", its write is just in flight
        if index is None:
            show_info(strings.ALL_DONE)
            return
        self.open_case(index)
