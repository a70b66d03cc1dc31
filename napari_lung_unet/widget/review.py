"""The review loop on the GUI thread: open a case, show its proposal or draft, track edits, accept.

Layers are *reused*: the ``x-ray`` Image and ``lungs`` Labels layers get new data for each case
instead of being removed and re-added. Under Xvfb + Mesa, napari 0.9.2 segfaulted in
``glDrawArrays`` when a Labels layer's data was set, the layers cleared and a 20-Mpx image and
labels added; updating data in place avoids tearing down and rebuilding the GL visuals.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, Signal

from ..corrections import CorrectionRecord, CorrectionsStore, safe_case_id, sha256_of
from ..io import ImageError, XRay, read_xray
from ..settings import corrections_dir
from ..worklist import ACCEPTED, EDITED, NEW, PROPOSED, SKIPPED, Case, Worklist, WorklistError, is_uncertain
from . import strings
from .drafts import DraftAutosaver
from .read_ahead import ReadAhead
from .readouts import LungStats

if TYPE_CHECKING:
    from .dock import LungUNetWidget
    from .state import ProposalResult


class ReviewController(QObject):
    case_opened = Signal(object)  # the Case, after its layers are shown
    case_accepted = Signal(object)  # the Case, after the store has it

    def __init__(self, dock: LungUNetWidget) -> None:
        super().__init__(dock)
        self.dock = dock
        self.viewer = dock.viewer
        self.worklist: Worklist | None = None
        self.case: Case | None = None
        self.xray: XRay | None = None
        self.proposal: np.ndarray | None = None
        self.stats = LungStats()
        self.drafts = DraftAutosaver(self._write_draft, self)
        self.read_ahead = ReadAhead()
        self.auto_propose = True
        self.store_dir: Path = corrections_dir()
        self._accepting: dict[str, threading.Event] = {}  # case id -> set when its accept is written
        self.accept_worker: FunctionWorker | None = None
        self._watched: set[str] = set()  # unique ids of Labels layers whose paint events we listen to
        self._replacing_labels = False  # True while a case's labels are put in the layer (not an edit)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)

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
        self.worklist = worklist
        self.dock.worklist_panel.show_worklist(worklist)
        self.open_case(worklist.current)
        return True

    def step(self, direction: int) -> bool:
        if self.worklist is None:
            show_info(strings.NO_CASE)
            return False
        index = self._neighbour(direction)
        if index is None:
            show_info(strings.END_OF_LIST)
            return False
        return self.open_case(index)

    def _neighbour(self, direction: int) -> int | None:
        """The case Next (+1) or Previous (-1) opens, honouring "Only unreviewed"."""
        assert self.worklist is not None
        only = self.dock.worklist_panel.only_unreviewed.isChecked()
        return self.worklist.step(self.worklist.current, direction, unreviewed_only=only)

    def _read_next(self) -> None:
        """Start reading the case Next opens, while the clinician works on this one.

        Called once the open case is settled (shown, and its proposal back): a read competing
        with the proposal for the two cores would slow the proposal the clinician waits for.
        """
        index = self._neighbour(1) if self.worklist is not None else None
        if index is not None:
            self.read_ahead.request(self.worklist.cases[index].path)

    def open_case(self, index: int) -> bool:
        """Save the open case's edits, then show case ``index`` (draft > cached proposal > new proposal)."""
        assert self.worklist is not None
        self.save_draft_now()
        pending = self._accepting.get(self.worklist.cases[index].case_id)
        if pending is not None:
            pending.wait(60)  # reopening a case whose accept is still writing: show what was accepted
        case = self.worklist.set_current(index)
        self.dock.worklist_panel.refresh()
        try:
            xray = self.read_ahead.take(case.path) or read_xray(case.path)
        except ImageError as exc:
            case.error = str(exc)
            self.worklist.save()
            self.case = self.xray = None  # nothing to accept until a readable case opens
            self.dock.worklist_panel.refresh(case)
            self.dock.set_status(strings.CASE_UNREADABLE.format(case_id=case.case_id, error=exc))
            show_error(strings.ERROR_PREFIX + strings.CASE_UNREADABLE.format(case_id=case.case_id, error=exc))
            return False
        if case.error:
            case.error = None
            self.worklist.save()
        if _is_colour(case.path):
            show_info(strings.RGB_CONVERTED.format(case_id=case.case_id))
        self.case, self.xray = case, xray
        shape = xray.pixels.shape
        self.proposal = self.worklist.load_proposal(case.case_id, shape)
        draft = self.worklist.load_draft(case.case_id, shape)
        labels = draft if draft is not None else self.proposal
        self._show_image(xray)
        self._show_labels(labels if labels is not None else np.zeros(shape, np.uint8), xray.scale)
        if draft is not None and case.status in (NEW, PROPOSED, EDITED) and self.proposal is not None:
            if not np.array_equal(draft, self.proposal):
                show_info(strings.DRAFT_RESTORED.format(case_id=case.case_id))
        self.refresh_info()
        self.dock.worklist_panel.refresh(case)
        self.case_opened.emit(case)
        if labels is None and self.auto_propose:
            self.dock.propose()  # _read_next follows when the proposal is back
        else:
            self._read_next()
        return True

    def _show_image(self, xray: XRay) -> Image:
        layer = self.viewer.layers[strings.XRAY_LAYER] if strings.XRAY_LAYER in self.viewer.layers else None
        reshaped = layer is None or layer.data.shape != xray.pixels.shape
        if isinstance(layer, Image) and layer.ndim == 2 and not layer.rgb:
            layer.data = xray.pixels
            layer.reset_contrast_limits()
        else:
            if layer is not None:  # a user-made layer with our name that cannot hold a 2-D X-ray
                self.viewer.layers.remove(layer)
            layer = self.viewer.add_image(xray.pixels, name=strings.XRAY_LAYER, colormap="gray")
        layer.scale = xray.scale
        self.dock.refresh_image_layers(select=layer)
        if reshaped:
            self.viewer.reset_view()
        return layer

    def _show_labels(self, labels: np.ndarray, scale: tuple[float, float]) -> Labels:
        """Put a case's labels in the reused ``lungs`` layer; its undo history starts afresh."""
        labels = np.array(labels, dtype=np.uint8, copy=True)  # painting must never alter self.proposal
        self._replacing_labels = True
        try:
            layer = self._put_labels(labels, scale)
        finally:
            self._replacing_labels = False
        self.stats.recount(labels, self.proposal)
        self.show_readouts()
        return layer

    def _put_labels(self, labels: np.ndarray, scale: tuple[float, float]) -> Labels:
        from .dock import LUNG_COLORS

        layer = self.dock.lungs_layer()
        if layer is not None and layer.ndim == 2:
            layer.data = labels
            # toggling editable is napari's public way to reset undo history: undoing must
            # never paint the previous case's mask into this one
            layer.editable = False
            layer.editable = True
        else:
            if layer is not None:
                self.viewer.layers.remove(layer)
            layer = self.viewer.add_labels(labels, name=strings.LUNGS_LAYER, opacity=0.5, colormap=LUNG_COLORS)
        layer.scale = scale
        layer.mode = "paint"
        self.dock.controls.apply_to(layer)
        self.watch(layer)
        self.viewer.layers.selection.active = layer
        return layer

    def watch(self, layer: Labels) -> None:
        # unique_id, not identity: the viewer napari gives a plugin hands out proxies of layers
        if layer.unique_id not in self._watched:
            layer.events.paint.connect(self._on_paint)
            # undo/redo write the history straight into the array and only refresh the layer:
            # no paint event, so without this the readouts and the draft would go stale
            layer.events.set_data.connect(self._on_refresh)
            self._watched.add(layer.unique_id)

    # -- proposals ---------------------------------------------------------------
    def case_id_for(self, layer: Any) -> str | None:
        """The open case's id when ``layer`` is the worklist image (so its proposal is cached)."""
        if self.case is not None and layer is not None and layer.name == strings.XRAY_LAYER:
            return self.case.case_id
        return None

    def on_proposal(self, result: ProposalResult) -> bool:
        """Handle a worklist proposal; False when it is not one (the dock then shows it as before)."""
        if self.worklist is None or result.case_id is None:
            return False
        index = self.worklist.index_of(result.case_id)
        if index < 0:
            return False
        case = self.worklist.cases[index]
        prediction = result.prediction
        self.worklist.save_proposal(case, prediction.labels, prediction.model_version, prediction.confidence)
        self.dock.worklist_panel.refresh(case)
        if case is not self.case:
            return True  # the clinician moved on; the proposal waits on disk for their return
        self._read_next()
        edited = case.status == EDITED or self.proposal is not None
        self.proposal = prediction.labels
        if edited:
            # over edits (a re-proposal): one undoable step, so the clinician can get their mask back
            layer = self.dock.write_lungs_layer(result)
            self.stats.recount(layer.data, self.proposal)
            self.show_readouts()
        else:
            self._show_labels(prediction.labels, result.scale)
        lungs = self.dock.lungs_layer()
        if lungs is not None:
            lungs.metadata.update(model_version=prediction.model_version, confidence=prediction.confidence)
        self.refresh_info()
        return True

    def propose_again(self, model: str | None = None) -> None:
        """Re-propose the open case (e.g. with a freshly fine-tuned model)."""
        if model is not None:
            self.dock.select_model(model)
        self.dock.propose()

    # -- edits ---------------------------------------------------------------------
    def _on_paint(self, event: Any) -> None:
        layer = event.source
        if not self.stats.apply(event.value, layer.data):
            self.stats.recount(layer.data, self.proposal)
        self._edited(layer)

    def _on_refresh(self, event: Any) -> None:
        layer = event.source
        lungs = self.dock.lungs_layer()
        if self._replacing_labels or lungs is None or lungs.unique_id != layer.unique_id:
            return
        areas, changed = self.stats.areas.copy(), self.stats.changed
        self.stats.recount(layer.data, self.proposal)  # ~50 ms at 20 Mpx; refreshes are rare
        if changed != self.stats.changed or not np.array_equal(areas, self.stats.areas):
            self._edited(layer)  # an undo or redo (a visibility toggle changes nothing)

    def _edited(self, layer: Labels) -> None:
        """After any edit of the labels: readouts, the case's status, and a debounced draft save."""
        self.show_readouts()
        case = self.case
        lungs = self.dock.lungs_layer()
        if case is None or self.worklist is None or lungs is None or lungs.unique_id != layer.unique_id:
            return
        if case.status != EDITED:
            self.worklist.set_status(case, EDITED)
            self.dock.worklist_panel.refresh(case)
        self.drafts.schedule(case.case_id, lambda: layer.data)

    def _write_draft(self, case_id: str, labels: np.ndarray) -> None:
        # runs on the autosaver's thread; the worklist's draft write is atomic and touches no Qt
        if self.worklist is not None:
            self.worklist.save_draft(case_id, labels)

    def save_draft_now(self) -> None:
        """Flush pending edits to the draft file (case switch, layer removal, closing)."""
        try:
            self.drafts.flush()
        except OSError as exc:
            show_error(strings.ERROR_PREFIX + f"could not save the draft: {exc}")

    def _on_layer_removed(self, event: Any) -> None:
        if getattr(event.value, "name", None) == strings.LUNGS_LAYER:
            self.save_draft_now()  # the pending save still holds the removed layer's data

    def reset_to_proposal(self) -> None:
        layer = self.dock.lungs_layer()
        if self.proposal is None or layer is None or layer.data.shape != self.proposal.shape:
            show_info(strings.NO_PROPOSAL)
            return
        changed = np.nonzero(np.asarray(layer.data) != self.proposal)
        layer.data_setitem(changed, self.proposal[changed])  # undoable; fires paint -> draft + readouts

    # -- accept / skip -------------------------------------------------------------
    def accept(self) -> bool:
        """Validate on the GUI thread, write in a worker, open the next case straight away.

        At full resolution the store's 16-bit image PNG alone takes ~3 s to encode; the clinician
        should not wait for it. The case is marked accepted only once its record is on disk.
        """
        case, xray, worklist = self.case, self.xray, self.worklist
        if case is None or xray is None or worklist is None:
            show_error(strings.ERROR_PREFIX + strings.NO_CASE)
            return False
        layer = self.dock.lungs_layer()
        if layer is None:
            show_error(strings.ERROR_PREFIX + strings.NO_LUNGS)
            return False
        labels = np.asarray(layer.data)
        if labels.shape != xray.pixels.shape:
            show_error(strings.ERROR_PREFIX + strings.WRONG_SHAPE.format(layer=layer.name, labels=labels.shape, image=xray.pixels.shape))
            return False
        if int(labels.min()) < 0 or int(labels.max()) > 2:  # min/max, not np.unique: no 20-Mpx sort
            values = np.unique(labels)
            show_error(strings.ERROR_PREFIX + strings.BAD_LABELS.format(values=values.tolist()))
            return False
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
            _write_accepted,
            worklist,
            case.case_id,
            self.store_dir,
            xray.pixels,
            np.array(labels, dtype=np.uint8, copy=True),  # painting goes on while the copy is written
            record,
            done,
            _start_thread=False,
            _connect={
                "returned": lambda n, case=case: self._on_accepted(case, n),
                "errored": lambda exc, case=case: self._on_accept_failed(case, exc),
            },
        )
        self.accept_worker.start()
        self._advance(leaving=case)
        return True

    def _on_accepted(self, case: Case, n_cases: int) -> None:
        self._accepting.pop(case.case_id, None)
        if self.worklist is not None:
            self.worklist.set_status(case, ACCEPTED)
            self.dock.worklist_panel.refresh(case)
        show_info(strings.ACCEPTED_INFO.format(case_id=case.case_id, n=n_cases))
        self.case_accepted.emit(case)

    def _on_accept_failed(self, case: Case, exc: BaseException) -> None:
        self._accepting.pop(case.case_id, None)
        show_error(strings.ERROR_PREFIX + f"could not save {case.case_id}: {exc}")

    def skip(self) -> None:
        if self.case is None or self.worklist is None:
            show_info(strings.NO_CASE)
            return
        self.save_draft_now()
        self.worklist.set_status(self.case, SKIPPED)
        self.dock.worklist_panel.refresh(self.case)
        self._advance()

    def _advance(self, leaving: Case | None = None) -> None:
        assert self.worklist is not None
        index = self._neighbour(1)
        if index is None:
            index = self.worklist.first_unreviewed(uncertain_first=True)
        if index is not None and self.worklist.cases[index] is leaving:
            index = None  # the case being accepted is not "unreviewed", its write is just in flight
        if index is None:
            show_info(strings.ALL_DONE)
            return
        self.open_case(index)

    # -- display -------------------------------------------------------------------
    def show_readouts(self) -> None:
        self.dock.readouts.show_stats(self.stats, self.xray.spacing if self.xray is not None else None)

    def refresh_info(self) -> None:
        case = self.case
        if case is None or case.model_version is None:
            self.dock.model_info.setText(strings.MODEL_INFO_NONE)
            return
        self.show_model_info(case.model_version, case.confidence)

    def show_model_info(self, version: str, confidence: float | None) -> None:
        flag = strings.UNCERTAIN_FLAG if is_uncertain(confidence) else ""
        self.dock.model_info.setText(strings.MODEL_INFO.format(version=version, confidence=confidence or 0.0, flag=flag))


def _write_accepted(
    worklist: Worklist, case_id: str, store_dir: Path, pixels: np.ndarray, labels: np.ndarray,
    record: CorrectionRecord, done: threading.Event,
) -> int:
    """Accept worker body (no Qt): the case's draft, then the store entry (its record last)."""
    try:
        worklist.save_draft(case_id, labels)  # what reopening the case shows
        record.image_sha256 = sha256_of(pixels)
        store = CorrectionsStore(store_dir)
        store.add(pixels, labels, record)
        return len(store)
    finally:
        done.set()


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
