"""Accept: check the corrected mask on the GUI thread, store it through the dock's disk writer.

A worklist case opens the next case at once; it is marked accepted only once its record is on
disk. Any other open image is stored as an ad-hoc case with the same kind of record. A DICOM
case's SEG goes back to its PACS, when the worklist asks for it, from a worker of its own, so a
slow server never holds up the writer (drafts, the next proposal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils.notifications import show_error, show_info, show_warning

from ..images.masks import MaskError, checked_mask
from ..store.case_ids import case_id_for_source, legacy_case_id
from ..images.conventions import DEFAULT_CONVENTION
from ..store.corrections import CorrectionRecord, ProposalKept, safe_case_id
from ..store.worklist import ACCEPTED, Case
from . import strings
from .accepting import send_seg_back, source_of, write_adhoc, write_case
from .ask import ask
from .case_life import ACCEPTING as ACCEPTING_PHASE
from .case_life import log
from .dock_state import DockState


class Decide:
    def __init__(self, state: DockState, advance: Callable[[Case], None]) -> None:
        self.state = state
        self._advance = advance  # opens what follows an accepted case
        self.seg_worker: FunctionWorker | None = None  # the latest SEG sent back to a PACS

    def accept(self, flush_draft: Callable[[], None], cancel_draft: Callable[[], None]) -> bool:
        """Validate on the GUI thread, write on the writer; a worklist case also opens the next one at once.

        A case whose mask has not been shown yet (still opening or proposing) is never stored: the
        press is ignored and the status line says why. An empty mask is stored only after a yes.
        """
        state = self.state
        image, layer = state.image(), state.labels_layer()
        if image is None or (image.unique_id == state.xray_id and state.case is None):
            # the worklist's image with no readable case open holds nothing that may be stored
            show_error(strings.ERROR_PREFIX + (strings.NO_CASE if state.worklist else strings.NO_IMAGE_TO_ACCEPT))
            return False
        if state.is_case_image(image) and not state.life.can_accept():
            line = strings.ACCEPT_WAITS.format(name=strings.short_name(state.case.case_id), phase=state.life.phase)
            log.info("Accept ignored: %s", line)
            state.status.emit(line)
            return False
        if layer is None:
            show_error(strings.ERROR_PREFIX + strings.NO_LUNGS.format(image=image.name))
            return False
        pixels = image.data[0] if image.multiscale else image.data
        shape = tuple(pixels.shape[:2]) if image.rgb else tuple(pixels.shape)
        try:  # the store's own check, so the two can never disagree
            labels = checked_mask(np.asarray(layer.data), shape, f"layer '{layer.name}'", binary_255=False)
        except MaskError as exc:
            show_error(strings.ERROR_PREFIX + f"{exc}; nothing was saved.")
            return False
        labels = np.array(labels, dtype=np.uint8, copy=True)  # painting goes on while the copy is written
        name = state.case.case_id if state.is_case_image(image) else image.name
        token = state.life.token
        other = state.other_reviewer() if state.is_case_image(image) else None
        if other is not None:  # two reviewers on one folder: the second one is asked, never refused
            ask(state, strings.HELD_TITLE, strings.HELD_TEXT.format(case_id=name, line=other.line()),
                strings.HELD_YES, strings.HELD_KEEP, lambda: self._after_claim(image, layer, pixels, labels, name, token,
                                                                              flush_draft, cancel_draft))
            return False
        return self._after_claim(image, layer, pixels, labels, name, token, flush_draft, cancel_draft)

    def _after_claim(self, image: Image, layer: Labels, pixels: Any, labels: np.ndarray, name: str, token: int,
                     flush_draft: Callable[[], None], cancel_draft: Callable[[], None]) -> bool:
        state = self.state
        if not labels.any():  # "no lung here" trains the next fine-tune: only when the clinician says so
            ask(state, strings.EMPTY_TITLE, strings.EMPTY_TEXT.format(name=strings.short_name(name)),
                strings.EMPTY_YES, strings.EMPTY_KEEP,
                lambda: self._store(image, layer, pixels, labels, name, token, flush_draft, cancel_draft))
            return False
        return self._store(image, layer, pixels, labels, name, token, flush_draft, cancel_draft)

    def _store(self, image: Image, layer: Labels, pixels: Any, labels: np.ndarray, name: str, token: int,
               flush_draft: Callable[[], None], cancel_draft: Callable[[], None]) -> bool:
        state = self.state
        if token != state.life.token or state.image() is not image:
            return False  # answered after another case opened: what was asked about is not on screen
        # said at once, naming what is stored: the case the dock shows, or the image it reviews
        state.status.emit(strings.ACCEPTING.format(name=strings.short_name(name)))
        if state.is_case_image(image):
            state.life.move(ACCEPTING_PHASE)
            cancel_draft()  # the draft is queued here, in order with the store entry
            return self._accept_case(labels)
        flush_draft()
        return self._accept_adhoc(image, layer, pixels, labels)

    def _accept_case(self, labels: np.ndarray) -> bool:
        state = self.state
        case, worklist = state.case, state.worklist
        assert case is not None and worklist is not None
        record = CorrectionRecord(
            case_id=case_id_for_source(case.path),  # its source, not its folder's base name
            source_path=str(case.path.resolve()),
            image_sha256="",  # hashed on the writer
            model_version=case.model_version or "none",
            fraction_changed=state.stats.fraction_changed,
            proposal_expected_dice=case.confidence,  # the estimate the proposal came with (nn/quality.py)
            convention=state.mask_convention(),  # the one the mask was drawn in (edits keep it)
        )
        state.writer.save_mask(worklist.draft_path(case.case_id), labels)  # what reopening the case shows
        state.writer.submit(
            write_case, state.store_dir, case.path, labels, record,  # the source's pixels as read, not the grey copy
            self._proposal_kept(), legacy_case_id(worklist.folder, case.case_id),
            returned=lambda out, case=case: self._on_accepted(case, *out),
            errored=lambda exc, case=case: self._on_accept_failed(case.case_id, exc),
        )
        self._advance(case)
        return True

    def _accept_adhoc(self, image: Image, layer: Labels, pixels: Any, labels: np.ndarray) -> bool:
        """Any other open image becomes an ad-hoc case with the same record as a worklist case."""
        state = self.state
        source, stem = source_of(image)
        version, expected = state.proposed_by()
        corrected = state.labels_layer()
        record = CorrectionRecord(
            case_id="",  # named on the writer, from the pixels' hash
            source_path=source,
            image_sha256="",
            model_version=version or "none",
            fraction_changed=state.stats.fraction_changed if corrected is not None and corrected.unique_id == layer.unique_id else 0.0,
            proposal_expected_dice=expected,
            convention=state.mask_convention(),  # what its proposal was drawn in
        )
        state.writer.submit(
            write_adhoc, state.store_dir, pixels, labels, record, safe_case_id(stem), self._proposal_kept(),
            returned=lambda out: self._on_accepted(None, *out),
            errored=lambda exc, name=image.name: self._on_accept_failed(name, exc),
        )
        return True

    def _proposal_kept(self) -> ProposalKept | None:
        """The model's proposal the reviewed mask was corrected from, kept beside it in the store (MONAI
        Label's *original* next to *final*); None for a mask painted from nothing."""
        entry = self.state.proposed.get(self.state.image_id or "")
        if entry is None or not entry.model_version:
            return None
        labels = np.array(entry.labels, dtype=np.uint8, copy=True)
        return ProposalKept(labels, entry.model_version, entry.convention or DEFAULT_CONVENTION)

    def _on_accepted(self, case: Case | None, store_id: str, n_cases: int, warning: str | None, seg: Any) -> None:
        state = self.state
        worklist = state.worklist
        if case is not None and worklist is not None and any(c is case for c in worklist.cases):
            state.set_status(case, ACCEPTED)
            state.case_stored(case)
        stored_name = strings.short_name(case.case_id if case else store_id)
        if state.last_status == strings.ACCEPTING.format(name=stored_name):  # nothing opened after it: say it is done
            state.status.emit(strings.STORED.format(name=stored_name, cases=strings.n_cases(n_cases)))
        show_info(strings.ACCEPTED_INFO.format(case_id=case.case_id if case else store_id, cases=strings.n_cases(n_cases)))
        if warning:  # the correction is stored; its DICOM SEG is not
            show_warning(strings.ERROR_PREFIX + warning)
        if seg is None or worklist is None:
            self._done(case, store_id, None)
            return
        self.seg_worker = create_worker(
            send_seg_back, worklist.folder, seg, _start_thread=False,
            _connect={
                "returned": lambda line: self._done(case, store_id, line),
                "errored": lambda exc: self._done(case, store_id, f"accepted, but the SEG was not stored in the PACS: {exc}"),
            },
        )
        self.seg_worker.start()

    def _done(self, case: Case | None, store_id: str, warning: str | None) -> None:
        if warning:  # the correction is stored; the PACS copy of its SEG is not
            show_warning(strings.ERROR_PREFIX + warning)
        self.state.stored.emit(store_id)
        if case is not None:
            self.state.case_accepted.emit(case)

    def _on_accept_failed(self, name: str, exc: BaseException) -> None:
        show_error(strings.ERROR_PREFIX + f"could not save {name}: {exc}")
