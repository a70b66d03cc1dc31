"""The review loop on the GUI thread: open a case, show its proposal or draft, track edits, accept.

It works on the dock's :class:`.dock_state.DockState` and tells the panels what changed through
its signals; it knows no widget. Masks reach the viewer only through :mod:`.layers`, which
pairs each labels layer with one image.

The worklist's layers are *reused*: the ``x-ray`` Image and ``lungs`` Labels layers get new data
for each case instead of being removed and re-added. Under Xvfb + Mesa, napari 0.9.2 segfaulted
in ``glDrawArrays`` when a Labels layer's data was set, the layers cleared and a 20-Mpx image and
labels added; updating data in place avoids tearing down and rebuilding the GL visuals.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import FunctionWorker, GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, Signal

from ..images.read import ImageError, XRay, read_xray
from ..settings import corrections_dir
from ..store.corrections import CorrectionRecord, safe_case_id
from ..store.worklist import ACCEPTED, EDITED, NEW, PROPOSED, SKIPPED, Case, Worklist, WorklistError, is_uncertain
from . import layers, strings
from .accepting import source_of, write_adhoc, write_case
from .dock_state import DockState
from .drafts import DraftAutosaver
from .proposals import ProposalRunner
from .read_ahead import ReadAhead
from .readouts import LungStats
from .state import ProposalRequest, ProposalResult


class ReviewController(QObject):
    status = Signal(str)  # a line for the dock's status label
    model_info = Signal(str)  # who proposed the reviewed image's mask, and how sure it was
    stats_changed = Signal()  # the readouts (areas, % changed) need redrawing
    worklist_shown = Signal(object)  # a Worklist was opened
    case_refreshed = Signal(object)  # a Case's status changed (None: redraw all)
    labels_shown = Signal(object)  # the Labels layer now being corrected got new data
    case_opened = Signal(object)  # the Case, after its layers are shown
    case_accepted = Signal(object)  # the worklist Case, after the store has it
    stored = Signal(str)  # the corrections store's case id, after any accept (worklist or ad hoc)

    def __init__(self, state: DockState, runner: ProposalRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.runner = runner
        self.viewer = state.viewer
        self.stats = LungStats()
        self.drafts = DraftAutosaver(self._write_draft, self)
        self.read_ahead = ReadAhead()
        self.store_dir: Path = corrections_dir()
        self._accepting: dict[str, threading.Event] = {}  # case id -> set when its accept is written
        self.accept_worker: FunctionWorker | None = None
        self._watched: set[str] = set()  # unique ids of Labels layers whose paint events we listen to
        self._replacing_labels = False  # True while a mask is put in a layer (not an edit)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        runner.returned.connect(self.on_proposal)
        runner.finished.connect(self._propose_pending_case)
        state.image_changed.connect(self._on_image_changed)

    # -- compatibility shortcuts to the state (tests and scripts use them) ----------
    @property
    def worklist(self) -> Worklist | None:
        return self.state.worklist

    @property
    def case(self) -> Case | None:
        return self.state.case

    @property
    def xray(self) -> XRay | None:
        return self.state.xray

    @property
    def proposal(self) -> np.ndarray | None:
        return self.state.proposal()

    @property
    def auto_propose(self) -> bool:
        return self.state.auto_propose

    @auto_propose.setter
    def auto_propose(self, on: bool) -> None:
        self.state.auto_propose = on

    # -- proposing ---------------------------------------------------------------------
    def propose(self, model: str | None = None, image: Image | None = None) -> GeneratorWorker | None:
        """Propose a mask for ``image`` (default: the reviewed one) with ``model`` (default: the Model box)."""
        if self.state.running:
            return None
        image = image if image is not None else self.state.image()
        if image is None:
            self.status.emit(strings.STATUS_NO_IMAGE)
            show_error(strings.ERROR_PREFIX + strings.STATUS_NO_IMAGE)
            return None
        request = ProposalRequest(
            image=image.data[0] if image.multiscale else image.data,  # full resolution
            rgb=bool(image.rgb),
            layer_name=image.name,
            scale=tuple(float(s) for s in image.scale),
            translate=tuple(float(t) for t in image.translate),
            model=model or self.state.model,
            device=self.state.device,
            case_id=self.state.case_id_for(image),
            image_id=image.unique_id,
        )
        return self.runner.start(request)

    def on_proposal(self, result: ProposalResult) -> None:
        """Put a proposal into its own image's mask (and cache it, for a worklist case)."""
        case = self._case_of(result)
        if case is not None:
            prediction = result.prediction
            self.state.worklist.save_proposal(case, prediction.labels, prediction.model_version, prediction.confidence)
            self.case_refreshed.emit(case)
            if case is not self.state.case:
                return  # the clinician moved on; the proposal waits on disk for their return
            self._read_next()
        image = layers.find_layer(self.viewer, result.image_id)
        if not isinstance(image, Image):
            return  # the image was closed while its proposal ran
        if case is not None and not self.state.is_case_image(image):
            return
        had_mask = layers.labels_of(self.viewer, image) is not None and self.state.proposals.get(image.unique_id) is not None
        edited = had_mask or (case is not None and case.status == EDITED)
        self.state.set_proposal(image, result.labels)
        # over edits (a re-proposal): one undoable step, so the clinician can get their mask back
        layer = self._show_labels(image, result.labels, undoable=edited)
        layer.metadata.update(model_version=result.model_version, confidence=result.prediction.confidence)
        self.refresh_info()

    def _case_of(self, result: ProposalResult) -> Case | None:
        worklist = self.state.worklist
        if worklist is None or result.case_id is None:
            return None
        index = worklist.index_of(result.case_id)
        return worklist.cases[index] if index >= 0 else None

    def _propose_pending_case(self, result: ProposalResult | None) -> None:
        """A case opened while another proposal ran gets its own proposal now."""
        state, case = self.state, self.state.case
        if (
            state.auto_propose and case is not None and state.proposal() is None and case.status == NEW
            and (result is None or result.case_id != case.case_id) and state.worklist is not None
            and not state.worklist.proposal_path(case.case_id).is_file() and state.reviewing_case()
            and (state.labels_layer() is None or not state.labels_layer().data.any())
        ):
            self.propose()

    # -- worklist ----------------------------------------------------------------
    def open_folder(self, folder: str | Path) -> bool:
        self.save_draft_now()
        try:
            worklist = Worklist(folder)
        except (WorklistError, OSError) as exc:
            show_error(strings.ERROR_PREFIX + str(exc))
            return False
        if worklist.load_error:
            show_warning(strings.ERROR_PREFIX + worklist.load_error)
        self.state.open_worklist(worklist)
        self.worklist_shown.emit(worklist)
        self.open_case(worklist.current)
        return True

    def step(self, direction: int) -> bool:
        if self.state.worklist is None:
            show_info(strings.NO_CASE)
            return False
        index = self._neighbour(direction)
        if index is None:
            show_info(strings.END_OF_LIST)
            return False
        return self.open_case(index)

    def _neighbour(self, direction: int) -> int | None:
        """The case Next (+1) or Previous (-1) opens, honouring "Only unreviewed"."""
        worklist = self.state.worklist
        assert worklist is not None
        return worklist.step(worklist.current, direction, unreviewed_only=self.state.only_unreviewed)

    def _read_next(self) -> None:
        """Start reading the case Next opens, while the clinician works on this one.

        Called once the open case is settled (shown, and its proposal back): a read competing
        with the proposal for the two cores would slow the proposal the clinician waits for.
        """
        index = self._neighbour(1) if self.state.worklist is not None else None
        if index is not None:
            self.read_ahead.request(self.state.worklist.cases[index].path)

    def open_case(self, index: int) -> bool:
        """Save the open case's edits, then show case ``index`` (draft > cached proposal > new proposal)."""
        worklist = self.state.worklist
        assert worklist is not None
        self.save_draft_now()
        pending = self._accepting.get(worklist.cases[index].case_id)
        if pending is not None:
            pending.wait(60)  # reopening a case whose accept is still writing: show what was accepted
        case = worklist.set_current(index)
        self.case_refreshed.emit(None)
        try:
            xray = self.read_ahead.take(case.path) or read_xray(case.path)
        except ImageError as exc:
            self._show_unreadable(case, exc)
            return False
        if case.error:
            case.error = None
            worklist.save()
        if _is_colour(case.path):
            show_info(strings.RGB_CONVERTED.format(case_id=case.case_id))
        shape = xray.pixels.shape
        proposal = worklist.load_proposal(case.case_id, shape)
        draft = worklist.load_draft(case.case_id, shape)
        labels = draft if draft is not None else proposal
        image = self._show_image(xray)
        self.state.set_case(case, xray, image, proposal)
        self._show_labels(image, labels if labels is not None else np.zeros(shape, np.uint8), undoable=False)
        layers.raise_pair(self.viewer, image)  # image layers opened earlier must not cover the case
        if draft is not None and case.status in (NEW, PROPOSED, EDITED) and proposal is not None:
            if not np.array_equal(draft, proposal):
                show_info(strings.DRAFT_RESTORED.format(case_id=case.case_id))
        self.refresh_info()
        self.case_refreshed.emit(case)
        self.case_opened.emit(case)
        if labels is None and self.state.auto_propose:
            self.propose()  # _read_next follows when the proposal is back
        else:
            self._read_next()
        return True

    def _show_unreadable(self, case: Case, exc: ImageError) -> None:
        """A case that cannot be read: flag it, and take the previous case's picture off the screen."""
        case.error = str(exc)
        self.state.worklist.save()
        image = layers.find_layer(self.viewer, self.state.xray_id)
        for layer in (image, layers.labels_of(self.viewer, image)):
            if layer is not None:
                layer.visible = False  # hidden, not removed: the layers are reused (see the module doc)
        self.state.close_case()  # nothing to accept until a readable case opens
        self.stats.recount(np.zeros(0, np.uint8), None)
        self.stats_changed.emit()
        self.model_info.emit(strings.MODEL_INFO_NONE)
        self.case_refreshed.emit(case)
        message = strings.CASE_UNREADABLE.format(case_id=case.case_id, error=exc)
        self.status.emit(message)
        show_error(strings.ERROR_PREFIX + message)

    def _show_image(self, xray: XRay) -> Image:
        layer = layers.find_layer(self.viewer, self.state.xray_id)
        reshaped = layer is None or layer.data.shape != xray.pixels.shape
        if isinstance(layer, Image) and layer.ndim == 2 and not layer.rgb:
            layer.data = xray.pixels
            layer.reset_contrast_limits()
        else:
            layer = self.viewer.add_image(xray.pixels, name=strings.XRAY_LAYER, colormap="gray")
        layers.follow(layer, scale=xray.scale, visible=True)
        layer.metadata.update(source_path=str(xray.path) if xray.path is not None else None, spacing_mm=xray.spacing)
        if reshaped:
            self.viewer.reset_view()
        return layer

    def _show_labels(self, image: Image, labels: np.ndarray, undoable: bool) -> Labels:
        """Put a mask in ``image``'s own labels layer and make that layer the one being corrected."""
        if not undoable:  # a whole new array for the layer: painting must never alter a cached proposal
            labels = np.array(labels, dtype=np.uint8, copy=True)
        name = layers.labels_name(image.name, worklist=image.unique_id == self.state.xray_id)
        self._replacing_labels = True
        try:
            layer = layers.put_labels(self.viewer, image, labels, name, undoable=undoable)
        finally:
            self._replacing_labels = False
        self.watch(layer)
        if image.unique_id == self.state.image_id:
            self.viewer.layers.selection.active = layer  # labels_shown below puts it in paint mode
            self.stats.recount(layer.data, self.state.proposal())
            self.stats_changed.emit()
            self.labels_shown.emit(layer)
        return layer

    def watch(self, layer: Labels) -> None:
        # unique_id, not identity: the viewer napari gives a plugin hands out proxies of layers
        if layer.unique_id not in self._watched:
            layer.events.paint.connect(self._on_paint)
            # undo/redo write the history straight into the array and only refresh the layer:
            # no paint event, so without this the readouts and the draft would go stale
            layer.events.set_data.connect(self._on_refresh)
            self._watched.add(layer.unique_id)

    def _on_image_changed(self) -> None:
        """Another image is reviewed: the readouts, model line and controls follow its own mask."""
        layer = self.state.labels_layer()
        self.stats.recount(layer.data if layer is not None else np.zeros(0, np.uint8), self.state.proposal())
        self.stats_changed.emit()
        self.refresh_info()
        if layer is not None:
            self.labels_shown.emit(layer)

    # -- edits ---------------------------------------------------------------------
    def _is_corrected(self, layer: Any) -> bool:
        corrected = self.state.labels_layer()
        return corrected is not None and corrected.unique_id == layer.unique_id

    def _on_paint(self, event: Any) -> None:
        layer = event.source
        if self._is_corrected(layer) and not self.stats.apply(event.value, layer.data):
            self.stats.recount(layer.data, self.state.proposal())
        self._edited(layer)

    def _on_refresh(self, event: Any) -> None:
        layer = event.source
        if self._replacing_labels or not self._is_corrected(layer):
            return
        areas, changed = self.stats.areas.copy(), self.stats.changed
        self.stats.recount(layer.data, self.state.proposal())  # ~50 ms at 20 Mpx; refreshes are rare
        if changed != self.stats.changed or not np.array_equal(areas, self.stats.areas):
            self._edited(layer)  # an undo or redo (a visibility toggle changes nothing)

    def _edited(self, layer: Labels) -> None:
        """After any edit of a mask: readouts, and for the open case its status and a debounced draft."""
        if self._is_corrected(layer):
            self.stats_changed.emit()
        state, case = self.state, self.state.case
        if case is None or state.worklist is None or not state.is_case_labels(layer):
            return  # another image's mask is never a worklist case's draft
        # "edited" means "differs from the proposal": painting back to it (or Reset) is not an edit
        unchanged = self._is_corrected(layer) and self.stats.proposal is not None and self.stats.changed == 0
        status = PROPOSED if unchanged else EDITED
        if case.status != status and case.status in (NEW, PROPOSED, EDITED):
            state.worklist.set_status(case, status)
            self.case_refreshed.emit(case)
        self.drafts.schedule(case.case_id, lambda: layer.data)

    def _write_draft(self, case_id: str, labels: np.ndarray) -> None:
        # runs on the autosaver's thread; the worklist's draft write is atomic and touches no Qt
        worklist = self.state.worklist
        if worklist is not None:
            worklist.save_draft(case_id, labels)

    def save_draft_now(self) -> None:
        """Flush pending edits to the draft file (case switch, layer removal, closing)."""
        try:
            self.drafts.flush()
        except OSError as exc:
            show_error(strings.ERROR_PREFIX + f"could not save the draft: {exc}")

    def _on_layer_removed(self, event: Any) -> None:
        if isinstance(event.value, Labels) and event.value.metadata.get(layers.PAIR_KEY) == self.state.xray_id:
            self.save_draft_now()  # the pending save still holds the removed layer's data

    def reset_to_proposal(self) -> None:
        layer, proposal = self.state.labels_layer(), self.state.proposal()
        if proposal is None or layer is None or layer.data.shape != proposal.shape:
            show_info(strings.NO_PROPOSAL)
            return
        changed = np.nonzero(np.asarray(layer.data) != proposal)
        layer.data_setitem(changed, proposal[changed])  # undoable; fires paint -> draft + readouts

    # -- accept / skip -------------------------------------------------------------
    def accept(self) -> bool:
        """Validate on the GUI thread, write in a worker; a worklist case also opens the next one at once."""
        image, layer = self.state.image(), self.state.labels_layer()
        if image is None or (image.unique_id == self.state.xray_id and self.state.case is None):
            # the worklist's image with no readable case open holds nothing that may be stored
            show_error(strings.ERROR_PREFIX + (strings.NO_CASE if self.state.worklist else strings.NO_IMAGE_TO_ACCEPT))
            return False
        if layer is None:
            show_error(strings.ERROR_PREFIX + strings.NO_LUNGS.format(image=image.name))
            return False
        labels = np.asarray(layer.data)
        pixels = image.data[0] if image.multiscale else image.data
        shape = tuple(pixels.shape[:2]) if image.rgb else tuple(pixels.shape)
        if labels.shape != shape:
            show_error(strings.ERROR_PREFIX + strings.WRONG_SHAPE.format(layer=layer.name, labels=labels.shape, image=shape))
            return False
        if int(labels.min()) < 0 or int(labels.max()) > 2:  # min/max, not np.unique: no 20-Mpx sort
            show_error(strings.ERROR_PREFIX + strings.BAD_LABELS.format(values=np.unique(labels).tolist()))
            return False
        labels = np.array(labels, dtype=np.uint8, copy=True)  # painting goes on while the copy is written
        if self.state.is_case_image(image):
            return self._accept_case(labels)
        return self._accept_adhoc(image, layer, pixels, labels)

    def _accept_case(self, labels: np.ndarray) -> bool:
        """At full resolution the 16-bit image PNG takes ~3 s to encode: the next case opens meanwhile.

        The case is marked accepted only once its record is on disk.
        """
        case, xray, worklist = self.state.case, self.state.xray, self.state.worklist
        assert case is not None and xray is not None and worklist is not None
        record = CorrectionRecord(
            case_id=safe_case_id(f"{worklist.folder.name}-{case.case_id}"),  # folders may share file names
            source_path=str(case.path.resolve()),
            image_sha256="",  # hashed in the worker
            model_version=case.model_version or "none",
            fraction_changed=self.stats.fraction_changed,
        )
        self.drafts.cancel()  # the worker writes the draft itself, in order with the store entry
        done = threading.Event()
        self._accepting[case.case_id] = done
        self.accept_worker = create_worker(
            write_case, worklist, case.case_id, self.store_dir, xray.pixels, labels, record, done,
            _start_thread=False,
            _connect={
                "returned": lambda out, case=case, record=record: self._on_accepted(case, record.case_id, *out),
                "errored": lambda exc, case=case: self._on_accept_failed(case.case_id, exc),
            },
        )
        self.accept_worker.start()
        self._advance(leaving=case)
        return True

    def _accept_adhoc(self, image: Image, layer: Labels, pixels: Any, labels: np.ndarray) -> bool:
        """Any other open image becomes an ad-hoc case with the same record as a worklist case."""
        source, stem = source_of(image)
        record = CorrectionRecord(
            case_id="",  # named in the worker, from the pixels' hash
            source_path=source,
            image_sha256="",
            model_version=str(layer.metadata.get("model_version") or "none"),
            fraction_changed=self.stats.fraction_changed if self._is_corrected(layer) else 0.0,
        )
        self.accept_worker = create_worker(
            write_adhoc, self.store_dir, pixels, labels, record, safe_case_id(stem),
            _start_thread=False,
            _connect={
                "returned": lambda out: self._on_accepted(None, *out),
                "errored": lambda exc, name=image.name: self._on_accept_failed(name, exc),
            },
        )
        self.accept_worker.start()
        return True

    def _on_accepted(self, case: Case | None, store_id: str, n_cases: int, warning: str | None = None) -> None:
        if case is not None:
            self._accepting.pop(case.case_id, None)
            if self.state.worklist is not None:
                self.state.worklist.set_status(case, ACCEPTED)
                self.case_refreshed.emit(case)
        show_info(strings.ACCEPTED_INFO.format(case_id=case.case_id if case else store_id, cases=strings.n_cases(n_cases)))
        if warning:  # the correction is stored; its DICOM SEG or the PACS copy of it is not
            show_warning(strings.ERROR_PREFIX + warning)
        self.stored.emit(store_id)
        if case is not None:
            self.case_accepted.emit(case)

    def _on_accept_failed(self, name: str, exc: BaseException) -> None:
        self._accepting.pop(name, None)
        show_error(strings.ERROR_PREFIX + f"could not save {name}: {exc}")

    def skip(self) -> None:
        if not self.state.reviewing_case():
            show_info(strings.NO_SKIP if self.state.worklist else strings.NO_CASE)
            return
        self.save_draft_now()
        self.state.worklist.set_status(self.state.case, SKIPPED)
        self.case_refreshed.emit(self.state.case)
        self._advance()

    def _advance(self, leaving: Case | None = None) -> None:
        worklist = self.state.worklist
        assert worklist is not None
        index = self._neighbour(1)
        if index is None:
            index = worklist.first_unreviewed(uncertain_first=True)
        if index is not None and worklist.cases[index] is leaving:
            index = None  # the case being accepted is not "unreviewed", its write is just in flight
        if index is None:
            show_info(strings.ALL_DONE)
            return
        self.open_case(index)

    # -- display -------------------------------------------------------------------
    def refresh_info(self) -> None:
        """The model line of the reviewed image: its case's proposal, or its own mask's metadata."""
        state = self.state
        if state.reviewing_case():
            version, confidence = state.case.model_version, state.case.confidence
        else:
            layer = state.labels_layer()
            meta = layer.metadata if layer is not None else {}
            version, confidence = meta.get("model_version"), meta.get("confidence")
        if version is None:
            self.model_info.emit(strings.MODEL_INFO_NONE)
            return
        flag = strings.UNCERTAIN_FLAG if is_uncertain(confidence) else ""
        self.model_info.emit(strings.MODEL_INFO.format(version=version, confidence=confidence or 0.0, flag=flag))


def _is_colour(path: Path) -> bool:
    """Whether a raster file holds colour, so the clinician is told it was converted to grey."""
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        return False
    try:
        import imageio.v3 as iio

        props = iio.improps(path)
    except Exception:
        return False
    return len(props.shape) == 3 and props.shape[-1] in (3, 4)
