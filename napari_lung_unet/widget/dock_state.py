"""The dock's one state object (in the spirit of micro-sam's annotator state).

It holds which image is being reviewed, which worklist case is open, which labels layer is being
corrected, who proposed each mask, the readouts' counts, which model and device propose, and what
is running. The review's parts (navigation, display, edits, accept) and the panels read it and
change it only through its methods, and hear about changes through its signals; none keeps its
own copy. The combo boxes show it; they are not it. Layer metadata is never read back as state.

The open case is stored once: the worklist's ``current`` index, plus whether that case is open
(it is not while its file is unreadable, or right after a folder opened). Every change that must
reach the worklist's state file is queued on the dock's :class:`.writer.DiskWriter`.

It imports no other widget module except the pairing rule, the readouts' counts and plain data,
so nothing can import it back in a loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_warning
from qtpy.QtCore import QObject, Signal

from ..images.conventions import DEFAULT_CONVENTION
from ..images.read import XRay
from ..settings import corrections_dir
from ..store.claims import Claim
from ..store.worklist import Case, Worklist, read_labels
from . import layers, strings
from .case_life import ACCEPTED, ACCEPTING, EDITED, PROPOSING, SHOWN, CaseLife, log
from .quality_hint import heat_to_png
from .readouts import LungStats
from .writer import DiskWriter

if TYPE_CHECKING:
    import napari

CONVENTION_KEY = "convention"  # worklist setting: the lung convention its cases are proposed in


@dataclass(frozen=True)
class Proposed:
    """The model's last proposal for one image: what Reset and "% changed" compare against."""

    labels: np.ndarray
    model_version: str | None
    confidence: float | None
    convention: str | None = None  # the lung convention it is drawn in (None: not known, lung fields)
    place: str = ""  # where the model was unsure ("the lower left lung"); "" when not known (yet)
    # the doubt map at the network's size (widget/quality_hint.py); None: not known (yet: a cached proposal's
    # is read back from the worklist by widget/unsure_overlay.py)
    heat: np.ndarray | None = None


class DockState(QObject):
    image_changed = Signal()  # another image is the one being reviewed
    case_changed = Signal()  # a case opened or closed, or a folder opened
    running_changed = Signal(bool)  # a proposal started (True) or ended (False)
    models_changed = Signal()  # the registry changed: a promotion, a new version, a rollback
    model_changed = Signal()  # the model pick changed (the Model box shows it)
    device_changed = Signal(str)
    convention_changed = Signal(object)  # the open worklist's convention (None: the model's own)
    status = Signal(str)  # a line for the dock's status label
    model_info = Signal(str)  # who proposed the reviewed image's mask, and how sure it was
    stats_changed = Signal()  # the readouts (areas, % changed) need redrawing
    worklist_shown = Signal(object)  # a Worklist was opened
    case_refreshed = Signal(object)  # a Case's status changed (None: redraw all)
    labels_shown = Signal(object)  # the Labels layer now being corrected got new data
    case_opened = Signal(object)  # the Case, after its layers are shown
    case_accepted = Signal(object)  # the worklist Case, after the store has it
    stored = Signal(str)  # the corrections store's case id, after any accept (worklist or ad hoc)

    def __init__(self, viewer: napari.Viewer, writer: DiskWriter, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.writer = writer
        self.image_id: str | None = None  # the reviewed Image layer's unique_id
        self.worklist: Worklist | None = None
        self._case_open = False  # the worklist's current case is shown and readable
        self.xray: XRay | None = None  # the open case's pixels, spacing and path
        self.xray_id: str | None = None  # unique_id of the worklist's reused Image layer
        self.proposed: dict[str, Proposed] = {}  # image unique_id -> the model's last proposal for it
        self.stats = LungStats()  # the corrected mask's counts, kept in step by the edits part
        self.store_dir: Path = corrections_dir()
        self.model: str | None = None  # the user's pick: a version or a path; None = the registry's current
        self.device = "auto"
        self.auto_propose = True
        self.only_unreviewed = False
        self.least_sure_first = False  # Previous/Next and the case list follow the expected Dice, lowest first
        self.running = False  # a proposal is running
        self.life = CaseLife()  # the open case's phase, token, and each mask's generation and convention
        self.question: Any = None  # the open "replace your edits?" question (a QMessageBox), if any
        self.last_status = ""  # what the status line says now (a line about an ended state is replaced)
        self._claimed_case: tuple[Worklist, Case] | None = None  # the case this dock claimed last
        self.held_by: tuple[int, Claim] | None = None  # (case token, another reviewer's claim on that case)
        self.status.connect(self._remember_status)

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
        entry = self.proposed.get(self.image_id) if self.image_id else None
        return entry.labels if entry is not None else None

    def proposed_by(self) -> tuple[str | None, float | None]:
        """Who proposed the reviewed image's mask and how sure it was; (None, None) before any proposal."""
        if self.reviewing_case():
            return self.case.model_version, self.case.confidence
        entry = self.proposed.get(self.image_id) if self.image_id else None
        return (entry.model_version, entry.confidence) if entry is not None else (None, None)

    def set_proposal(self, image_id: str, labels: np.ndarray | None, version: str | None = None,
                     confidence: float | None = None, convention: str | None = None, place: str = "",
                     heat: np.ndarray | None = None) -> None:
        if labels is None:
            self.proposed.pop(image_id, None)
        else:
            self.proposed[image_id] = Proposed(labels, version, confidence, convention, place, heat)

    def reviewed_proposal(self) -> Proposed | None:
        """The reviewed image's proposal entry (its labels, who made it, where it was unsure), or None."""
        return self.proposed.get(self.image_id) if self.image_id else None

    def unsure_place(self) -> str:
        """Where the reviewed image's proposal was unsure, as its worker said ("" when not known)."""
        entry = self.reviewed_proposal()
        return entry.place if entry is not None else ""

    def mask_convention(self) -> str:
        """The lung convention the reviewed image's mask is drawn in, which its record says.

        The convention of the proposal it was corrected from (edits keep it: a convention switch
        that kept the edits does not relabel them); a mask painted from nothing on a worklist case:
        the worklist's choice. Lung fields when nothing says otherwise.
        """
        drawn = self.life.drawn_in.get(self.image_id) if self.image_id else None
        if drawn:
            return drawn
        if self.reviewing_case():
            return self.convention or self.case.convention or DEFAULT_CONVENTION
        entry = self.proposed.get(self.image_id) if self.image_id else None
        return (entry.convention if entry is not None else None) or DEFAULT_CONVENTION

    def has_edits(self) -> bool:
        """Whether the reviewed image's mask holds work of the clinician's that a replacement would lose."""
        layer = self.labels_layer()
        if layer is None:
            return False
        if self.proposal() is None:
            return bool(np.asarray(layer.data).any())  # painted from nothing
        return self.stats.changed > 0

    def _remember_status(self, line: str) -> None:
        self.last_status = line

    # -- the case's life ----------------------------------------------------------------
    def mask_changed(self, image_id: str) -> None:
        """Any change of an image's mask: results computed for the mask before it are stale."""
        self.life.bump(image_id)

    def mask_shown(self, image_id: str, convention: str | None, edited: bool = False) -> None:
        """A proposal or draft drawn in ``convention`` is now the image's mask."""
        self.life.bump(image_id)
        self.life.set_drawn_in(image_id, convention)
        if self.is_case_image(layers.find_layer(self.viewer, image_id)):
            self.life.move(EDITED if edited else SHOWN)

    def case_waits_for_proposal(self) -> None:
        """The open case is shown with an empty mask while the model draws one."""
        self.life.move(PROPOSING)

    def case_edited(self, edited: bool) -> None:
        self.life.move(EDITED if edited else SHOWN)

    def case_stored(self, case: Case) -> None:
        """``case``'s accept is on disk: if it is still the one on screen (the end of a worklist), it is accepted."""
        if case is self.case and self.life.phase == ACCEPTING:
            self.life.move(ACCEPTED)

    # -- the worklist case ----------------------------------------------------------
    @property
    def case(self) -> Case | None:
        """The open worklist case (None: no worklist, no readable case open)."""
        worklist = self.worklist
        return worklist.cases[worklist.current] if worklist is not None and self._case_open else None

    def is_case_image(self, layer: Any | None) -> bool:
        """Whether ``layer`` is the worklist's image while a readable case is open."""
        return self._case_open and layer is not None and layer.unique_id == self.xray_id

    def is_case_labels(self, layer: Any | None) -> bool:
        return self._case_open and layer is not None and layer.metadata.get(layers.PAIR_KEY) == self.xray_id

    def reviewing_case(self) -> bool:
        """Whether the reviewed image is the open worklist case (Skip and Next mean something)."""
        return self.is_case_image(self.image())

    def case_id_for(self, layer: Any | None) -> str | None:
        return self.case.case_id if self.is_case_image(layer) else None

    def open_worklist(self, worklist: Worklist) -> None:
        self._release_claim()
        self.worklist = worklist
        self.close_case()
        self.worklist_shown.emit(worklist)
        self.convention_changed.emit(self.convention)

    def select_case(self, index: int) -> Case:
        """Make case ``index`` the worklist's current one (not yet open: its file is read next)."""
        assert self.worklist is not None
        self._case_open, self.xray = False, None  # set_case or close_case says what became of it
        self._release_claim()
        case = self.worklist.set_current(index, save=False)
        self.life.open(case.case_id)  # results for the case shown before are stale from here on
        self.save_worklist()
        self.case_refreshed.emit(None)
        return case

    def set_case(self, xray: XRay, image: Image, proposal: np.ndarray | None) -> None:
        """The current case is read and shown in ``image``: it is open."""
        self._case_open, self.xray, self.xray_id = True, xray, image.unique_id
        case = self.case
        self.claim_case(case)
        self.set_proposal(image.unique_id, proposal, case.model_version, case.confidence, case.proposal_convention)
        self.case_changed.emit()
        self.set_image(image)  # the reused x-ray layer is usually reviewed already: no re-emit

    # -- two reviewers on one folder: who has the case open -----------------------------
    def claim_case(self, case: Case) -> None:
        """Note on disk that this dock has ``case`` open (on the writer: a lock file on a shared drive)."""
        worklist, token = self.worklist, self.life.token
        if worklist is None:
            return
        self.writer.submit(worklist.claim, case, returned=lambda claim: self._claimed(token, case, claim),
                           errored=lambda exc: log.info("could not claim %s: %s", case.case_id, exc))
        self._claimed_case = (worklist, case)

    def _claimed(self, token: int, case: Case, claim: Claim) -> None:
        if token != self.life.token or claim.mine:
            return
        self.held_by = (token, claim)  # Accept asks first
        line = strings.OPEN_ELSEWHERE.format(case_id=case.case_id, line=claim.line())
        self.status.emit(line)
        show_warning(strings.ERROR_PREFIX + line)  # the status line moves on when the proposal arrives

    def other_reviewer(self) -> Claim | None:
        """Another reviewer's claim on the open case, as it stood when the case opened."""
        held = self.held_by
        return held[1] if held is not None and held[0] == self.life.token else None

    def _release_claim(self) -> None:
        claimed, self._claimed_case, self.held_by = self._claimed_case, None, None
        if claimed is not None:
            self.writer.submit(claimed[0].release, claimed[1],
                               errored=lambda exc: log.info("could not release %s: %s", claimed[1].case_id, exc))

    def close_case(self) -> None:
        """No readable case is open (a failed read, or a folder just opened)."""
        self._case_open, self.xray = False, None
        if self.xray_id is not None:
            self.proposed.pop(self.xray_id, None)
        self.case_changed.emit()

    def set_status(self, case: Case, status: str) -> None:
        assert self.worklist is not None
        self.worklist.set_status(case, status, save=False)
        self.save_worklist()
        self.case_refreshed.emit(case)

    def set_case_error(self, case: Case, error: str | None) -> None:
        if case.error != error:
            case.error = error
            self.save_worklist()

    def record_proposal(self, case: Case, labels: np.ndarray, version: str, confidence: float, convention: str,
                        drop_draft: bool = False, heat: np.ndarray | None = None) -> None:
        """A proposal for a worklist case: cached on disk with its convention (and its doubt map, ``heat``),
        so reopening or restarting does not re-run the model (unless the worklist's convention changed since)."""
        assert self.worklist is not None
        self.writer.save_mask(self.worklist.proposal_path(case.case_id), labels)
        unsure = self.worklist.unsure_path(case.case_id)
        if heat is None:
            self.writer.remove_mask(unsure)  # never an older proposal's map beside this one
        else:
            self.writer.save_mask(unsure, heat_to_png(heat))
        if drop_draft:  # an untouched draft is the earlier proposal's copy: never shown over this one
            self.writer.remove_mask(self.worklist.draft_path(case.case_id))
        self.worklist.record_proposal(case, version, confidence, convention)
        self.save_worklist()
        self.case_refreshed.emit(case)

    def drawn_elsewhere(self, case: Case) -> bool:
        """Whether ``case``'s cached proposal is drawn in another convention than the worklist's choice.

        None chosen: the model's own, which drew every proposal this worklist cached, so nothing differs.
        """
        return self.convention is not None and case.proposal_convention != self.convention

    def forget_proposal(self, case: Case) -> None:
        """Drop ``case``'s cached proposal and its untouched draft (both drawn in another convention)."""
        assert self.worklist is not None
        self.writer.remove_mask(self.worklist.proposal_path(case.case_id))
        self.writer.remove_mask(self.worklist.draft_path(case.case_id))
        self.writer.remove_mask(self.worklist.unsure_path(case.case_id))
        self.worklist.forget_proposal(case)
        self.save_worklist()
        self.case_refreshed.emit(case)

    def save_worklist(self) -> None:
        if self.worklist is not None:
            self.writer.save_state(self.worklist)

    def load_mask(self, path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
        """A proposal or draft as the writer has it: still queued, else from disk."""
        pending = self.writer.pending_mask(path)
        if pending is not None:
            return pending if pending.shape == tuple(shape) else None
        return read_labels(path, shape)

    # -- the worklist's convention ----------------------------------------------------
    @property
    def convention(self) -> str | None:
        return self.worklist.settings.get(CONVENTION_KEY) if self.worklist is not None else None

    def set_convention(self, convention: str | None) -> None:
        """Remember the open worklist's lung convention (None: the model's own) in its state file."""
        if self.worklist is None or convention == self.convention:
            return
        if convention is None:
            self.worklist.settings.pop(CONVENTION_KEY, None)
        else:
            self.worklist.settings[CONVENTION_KEY] = convention
        self.save_worklist()
        self.convention_changed.emit(convention)

    # -- the model ------------------------------------------------------------------
    def set_model(self, model: str | None) -> None:
        model = model or None
        if model != self.model:
            self.model = model
            self.model_changed.emit()

    def set_device(self, device: str) -> None:
        if device != self.device:
            self.device = device
            self.device_changed.emit(device)

    def registry_changed(self) -> None:
        """A promotion, a new candidate or a rollback: the Model box follows the registry's current."""
        self.model = None
        self.models_changed.emit()

    # -- what is running ------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self.running = running
        self.running_changed.emit(running)
