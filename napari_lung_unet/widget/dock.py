"""The "Lung U-Net" dock widget: a review worklist, lung proposals, quick correction, accept,
fine-tune and model history. Each section lives in its own module; this one lays them out and
owns the proposal worker.

Threading rule: everything that touches Qt or napari layers happens here, on the GUI thread;
:func:`.engine.run_proposal` does the slow part (model loading, inference) in a napari
``thread_worker`` and only sees plain data (:class:`.state.ProposalRequest`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..device import DEVICE_CHOICES, resolve_device
from ..registry import Registry
from ..settings import corrections_dir
from . import strings
from .controls import QuickControls
from .engine import run_proposal
from .finetune_panel import FinetunePanel
from .history import HistoryPanel
from .readouts import ReadoutsLabel
from .review import ReviewController
from .state import ProposalRequest, ProposalResult, WidgetState
from .worklist_panel import WorklistPanel

if TYPE_CHECKING:
    import napari

# right lung (image left) blue, left lung orange: distinct for the common colour-vision deficiencies
LUNG_COLORS = {None: "transparent", 0: "transparent", 1: "deepskyblue", 2: "orange"}
# viewer-level shortcuts; overwrite=True because napari may already bind some of these keys
SHORTCUTS = {"Shift-N": "next", "Shift-P": "previous", "Shift-A": "accept"}


class _RefreshingComboBox(QComboBox):
    """A combo box that re-reads its choices just before it opens (models appear while napari runs)."""

    def __init__(self, refresh: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._refresh = refresh

    def showPopup(self) -> None:  # noqa: N802 - Qt override
        self._refresh()
        super().showPopup()


class LungUNetWidget(QWidget):
    """Dock widget that proposes a ``lungs`` Labels layer for the chosen Image layer."""

    #: emitted on the GUI thread after each run: the :class:`ProposalResult`, or None if it failed
    proposal_finished = Signal(object)

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = WidgetState()
        self.worker: GeneratorWorker | None = None  # the latest proposal's worker (tests wait on it)
        self._run_result: ProposalResult | None = None  # this run's result, for proposal_finished
        self._build_ui()
        self.review = ReviewController(self)
        self._build_review_ui()
        self.refresh_image_layers()
        self.refresh_models()
        events = self.viewer.layers.events
        for emitter in (events.inserted, events.removed, events.reordered, events.renamed):
            emitter.connect(self._on_layers_changed)
        self.proposal_finished.connect(self._propose_pending_case)
        self._bind_keys()

    # -- construction ----------------------------------------------------------
    def _build_ui(self) -> None:
        self.image_combo = QComboBox()
        self.image_combo.setToolTip(strings.IMAGE_TIP)

        self.model_combo = _RefreshingComboBox(self.refresh_models)
        self.model_combo.setEditable(True)  # so a model folder path can be typed or pasted
        self.model_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model_combo.setToolTip(strings.MODEL_TIP)
        browse = QToolButton()
        browse.setText(strings.BROWSE)
        browse.setToolTip(strings.BROWSE_TIP)
        browse.clicked.connect(self._browse_model)
        model_row = QHBoxLayout()
        model_row.setContentsMargins(0, 0, 0, 0)
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(browse)

        self.device_combo = QComboBox()
        self.device_combo.setToolTip(strings.DEVICE_TIP)
        self._fill_devices()

        self.propose_button = QPushButton(strings.PROPOSE)
        self.propose_button.setToolTip(strings.PROPOSE_TIP)
        self.propose_button.clicked.connect(self.propose)

        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # indeterminate: one inference has no meaningful percentage
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.progress.setVisible(False)

        self.status_label = QLabel(strings.STATUS_IDLE)
        self.status_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow(strings.IMAGE_LABEL, self.image_combo)
        form.addRow(strings.MODEL_LABEL, model_row)
        form.addRow(strings.DEVICE_LABEL, self.device_combo)
        layout = QVBoxLayout(self)
        self.setMinimumWidth(320)  # room for the dock title "Lung U-Net (napari-lung-unet)"
        layout.addLayout(form)
        layout.addWidget(self.propose_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

    def _build_review_ui(self) -> None:
        """Worklist on top, correction controls under the proposal, model management at the bottom."""
        layout: QVBoxLayout = self.layout()
        self.worklist_panel = WorklistPanel()
        self.worklist_panel.open_folder_clicked.connect(self._browse_folder)
        self.worklist_panel.case_clicked.connect(self.review.open_case)
        self.worklist_panel.step_clicked.connect(self.review.step)
        self.auto_propose = QCheckBox(strings.AUTO_PROPOSE)
        self.auto_propose.setChecked(True)
        self.auto_propose.toggled.connect(lambda on: setattr(self.review, "auto_propose", on))
        worklist_box = _group(strings.WIDGET_TITLE + " worklist", self.worklist_panel, self.auto_propose)
        layout.insertWidget(0, worklist_box)

        self.model_info = QLabel(strings.MODEL_INFO_NONE)
        self.model_info.setWordWrap(True)
        self.controls = QuickControls(self.lungs_layer, self.review.reset_to_proposal)
        self.readouts = ReadoutsLabel()
        self.accept_button = QPushButton(strings.ACCEPT)
        self.accept_button.setToolTip(strings.ACCEPT_TIP)
        self.accept_button.clicked.connect(self.review.accept)
        self.skip_button = QPushButton(strings.SKIP)
        self.skip_button.setToolTip(strings.SKIP_TIP)
        self.skip_button.clicked.connect(self.review.skip)
        decide = QWidget()
        row = QHBoxLayout(decide)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.accept_button, 2)
        row.addWidget(self.skip_button, 1)
        index = layout.indexOf(self.status_label) + 1
        layout.insertWidget(index, _group("Correct", self.model_info, self.controls, self.readouts, decide))

        self.finetune = FinetunePanel(corrections_dir(), device=self.selected_device)
        self.history = HistoryPanel()
        self.finetune.finished.connect(self._on_finetune_finished)
        self.finetune.repropose_requested.connect(self.review.propose_again)
        self.history.current_changed.connect(lambda _version: self.refresh_models())
        layout.insertWidget(index + 1, _group(strings.FINETUNE, self.finetune))
        layout.insertWidget(index + 2, _group(strings.HISTORY_TITLE, self.history))

    def _bind_keys(self) -> None:
        actions = {"next": lambda: self.review.step(1), "previous": lambda: self.review.step(-1), "accept": self.review.accept}
        for key, name in SHORTCUTS.items():
            action = actions[name]
            self.viewer.bind_key(key, lambda _viewer, action=action: action(), overwrite=True)

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, strings.OPEN_FOLDER_TIP)
        if folder:
            self.review.open_folder(folder)

    def _on_finetune_finished(self, result: dict | None) -> None:
        self.history.refresh()
        self.refresh_models()
        if result is not None:
            self.history.select(result["version"])

    def _propose_pending_case(self, result: ProposalResult | None) -> None:
        """A case opened while another proposal ran gets its own proposal now."""
        review = self.review
        case = review.case
        if (
            review.auto_propose and case is not None and review.proposal is None and case.status == "new"
            and (result is None or result.case_id != case.case_id) and review.worklist is not None
            and not review.worklist.proposal_path(case.case_id).is_file() and self.lungs_layer() is not None
            and not self.lungs_layer().data.any()
        ):
            self.propose()

    def hideEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        # closing napari (or the dock) hides this widget first: write any unsaved edits as a draft
        self.review.save_draft_now()
        super().hideEvent(event)

    def select_model(self, version: str) -> None:
        self.refresh_models()
        index = self.model_combo.findData(version)
        if index >= 0:
            self.model_combo.setCurrentIndex(index)
        else:
            self.model_combo.setEditText(version)

    def _fill_devices(self) -> None:
        for name in DEVICE_CHOICES:
            self.device_combo.addItem(name)
            if name != "auto" and not _device_available(name):
                item = self.device_combo.model().item(self.device_combo.count() - 1)
                item.setEnabled(False)
                item.setToolTip(strings.DEVICE_UNAVAILABLE_TIP)

    # -- choices ---------------------------------------------------------------
    def image_layers(self) -> list[Image]:
        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def refresh_image_layers(self, select: Image | None = None) -> None:
        """Re-list Image layers, keeping the current choice (even if renamed) unless ``select`` is given.

        Items carry the layer's ``unique_id`` because names change and the viewer napari gives a
        plugin is a proxy, so layer objects cannot be compared with ``is``.
        """
        keep = select.unique_id if select is not None else self.image_combo.currentData()
        self.image_combo.clear()
        for layer in self.image_layers():
            self.image_combo.addItem(layer.name, layer.unique_id)
        index = self.image_combo.findData(keep)
        if index >= 0:
            self.image_combo.setCurrentIndex(index)

    def _on_layers_changed(self, event: Any = None) -> None:
        inserted = getattr(event, "value", None) if getattr(event, "type", "") == "inserted" else None
        # a newly added image is almost always the one the user wants to segment next
        self.refresh_image_layers(select=inserted if isinstance(inserted, Image) else None)

    def selected_image_layer(self) -> Image | None:
        wanted = self.image_combo.currentData()
        for layer in self.image_layers():
            if layer.unique_id == wanted:
                return layer
        return None

    def refresh_models(self) -> None:
        """Re-list registry versions, marking the current one; keeps the user's pick or typed path."""
        keep = self.selected_model() if self.model_combo.count() else None
        registry = Registry()
        current = registry.current_version()
        self.model_combo.clear()
        for card in registry.cards():
            label = card.version + (strings.CURRENT_SUFFIX if card.version == current else "")
            self.model_combo.addItem(label, card.version)
            self.model_combo.setItemData(self.model_combo.count() - 1, card.status, Qt.ItemDataRole.ToolTipRole)
        index = self.model_combo.findData(keep or current)
        if index >= 0:
            self.model_combo.setCurrentIndex(index)
        elif keep:
            self.model_combo.setEditText(keep)

    def selected_model(self) -> str | None:
        """A registry version, a typed path, or None (= the registry's current version)."""
        text = self.model_combo.currentText().strip()
        index = self.model_combo.findText(text)
        if index >= 0:
            return self.model_combo.itemData(index)
        return text or None

    def selected_device(self) -> str:
        return self.device_combo.currentText()

    def _browse_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, strings.BROWSE_TIP)
        if folder:
            self.model_combo.setEditText(folder)

    # -- running ---------------------------------------------------------------
    def build_request(self) -> ProposalRequest | None:
        """Capture the chosen layer and settings; None (with a message) when there is no image."""
        layer = self.selected_image_layer()
        if layer is None:
            self.set_status(strings.STATUS_NO_IMAGE)
            show_error(strings.ERROR_PREFIX + strings.STATUS_NO_IMAGE)
            return None
        data = layer.data[0] if layer.multiscale else layer.data  # full resolution
        return ProposalRequest(
            image=data,
            rgb=bool(layer.rgb),
            layer_name=layer.name,
            scale=tuple(float(s) for s in layer.scale),
            translate=tuple(float(t) for t in layer.translate),
            model=self.selected_model(),
            device=self.selected_device(),
            case_id=self.review.case_id_for(layer),
        )

    def propose(self) -> GeneratorWorker | None:
        """Start a proposal in a background worker; returns it (also kept as ``self.worker``)."""
        if self.state.running:
            return None
        request = self.build_request()
        if request is None:
            return None
        self._set_running(True)
        self.state.last_error = None
        self._run_result = None
        worker = create_worker(
            run_proposal,
            request,
            _start_thread=False,
            # connecting "errored" also stops napari re-raising worker errors as tracebacks
            _connect={
                "yielded": self.set_status,
                "returned": self.on_proposal,
                "errored": self.on_error,
                "finished": self._on_finished,
            },
        )
        self.worker = worker
        worker.start()
        return worker

    def on_proposal(self, result: ProposalResult) -> None:
        """Put the proposal into the ``lungs`` layer (GUI thread); a worklist case's goes via the review."""
        if not self.review.on_proposal(result):
            layer = self.write_lungs_layer(result)
            layer.metadata.update(
                model_version=result.model_version,
                source_layer=result.layer_name,
                confidence=result.prediction.confidence,
            )
            self.review.watch(layer)
            self.review.stats.recount(layer.data, result.labels)
            self.review.show_readouts()
            self.review.show_model_info(result.model_version, result.prediction.confidence)
        self.state.last_result = self._run_result = result
        self.state.history.append(result.model_version)
        self.set_status(
            strings.STATUS_DONE.format(version=result.model_version, device=result.device, seconds=result.seconds)
        )

    def write_lungs_layer(self, result: ProposalResult) -> Labels:
        """Update ``lungs`` in place when shapes match (as an undoable edit), else replace its data."""
        labels = result.labels
        layer = self.lungs_layer()
        if layer is not None and isinstance(layer.data, np.ndarray) and layer.data.shape == labels.shape:
            changed = np.nonzero(layer.data != labels)
            layer.data_setitem(changed, labels[changed])  # recorded in undo history, unlike .data = ...
        elif layer is not None and layer.ndim == labels.ndim:
            layer.data = labels
        else:
            if layer is not None:
                self.viewer.layers.remove(layer)
            layer = self.viewer.add_labels(labels, name=strings.LUNGS_LAYER, opacity=0.5, colormap=LUNG_COLORS)
        layer.scale = result.scale
        layer.translate = result.translate
        return layer

    def on_error(self, exc: BaseException) -> None:
        # expected problems (bad image, unknown model, missing GPU) are ValueErrors with clear text
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        self.state.last_error = message
        self.set_status(strings.STATUS_FAILED.format(message=message))
        show_error(strings.ERROR_PREFIX + message)

    def _on_finished(self) -> None:
        self._set_running(False)
        self.proposal_finished.emit(self._run_result)

    def _set_running(self, running: bool) -> None:
        self.state.running = running
        self.propose_button.setEnabled(not running)
        self.progress.setVisible(running)

    # -- helpers ---------------------------------------------------------------
    def lungs_layer(self) -> Labels | None:
        if strings.LUNGS_LAYER in self.viewer.layers:
            layer = self.viewer.layers[strings.LUNGS_LAYER]
            if isinstance(layer, Labels):
                return layer
        return None

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)


def _group(title: str, *widgets: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    for widget in widgets:
        layout.addWidget(widget)
    return box


def _device_available(name: str) -> bool:
    try:
        resolve_device(name)
    except ValueError:
        return False
    return True
