"""The "Lung U-Net" dock widget: lays out the panels and wires them to the one dock state.

What the dock is doing lives in :class:`.dock_state.DockState`; the review loop
(:class:`.review.ReviewController`) and the proposal runner (:class:`.proposals.ProposalRunner`)
change it, and the panels here only show it. No module of the widget imports this one.

Layout for a 1366×768 laptop: a short header (image, model, device, Propose) above two tabs,
*Review* (worklist, correction) and *Model* (fine-tune, history), all in a scroll area, so the
dock never needs more height than the screen has and leaves the canvas most of the width.

Threading rule: everything that touches Qt or napari layers happens on the GUI thread;
inference, training and file writes run in workers or a child process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari.layers import Image, Labels
from napari.qt.threading import GeneratorWorker
from qtpy.QtCore import QSize, Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..images.labels import LEFT_LUNG, RIGHT_LUNG
from ..nn.device import DEVICE_CHOICES
from ..nn.registry import Registry
from . import keys, layers, strings
from .action_bar import ActionBar
from .controls import QuickControls
from .convention_box import ConventionBox
from .current import read_current
from .dock_state import DockState
from .finetune_panel import FinetunePanel
from .history import HistoryPanel
from .pacs_dialog import open_pacs_dialog
from .proposals import ProposalRunner
from .qt_bits import RefreshingComboBox, column, device_available, group, narrow, wrapping
from .readouts import ReadoutsLabel
from .review import ReviewController
from .unsure_overlay import UnsureOverlay, is_overlay
from .worklist_panel import WorklistPanel
from .warm_up import warm_up
from .writer import DiskWriter

if TYPE_CHECKING:
    import napari

# viewer-level shortcuts; overwrite=True because napari may already bind some of these keys
SHORTCUTS = {"Shift-N": "next", "Shift-P": "previous", "Shift-A": "accept"}  # also on napari's canvas keymap
DOCK_WIDTH = 240  # px: beside napari's layer controls (337 px once a layer is open), the canvas keeps >= 55 % of a 1366-px window


class LungUNetWidget(QWidget):
    """Dock widget: review worklist, lung proposals into each image's own mask, accept, fine-tune."""

    #: emitted on the GUI thread after each proposal: the ProposalResult, or None if it failed
    proposal_finished = Signal(object)

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.writer = DiskWriter(self)  # every file the review writes, off the GUI thread
        self.state = DockState(napari_viewer, self.writer, self)
        self.runner = ProposalRunner(self.state, self)
        self.review = ReviewController(self.state, self.runner, self)
        self._build_ui()
        self._connect()
        self.refresh_image_layers()
        self.refresh_models()
        events = self.viewer.layers.events
        for emitter in (events.inserted, events.removed, events.reordered, events.renamed):
            emitter.connect(self._on_layers_changed)
        self.viewer.layers.selection.events.active.connect(self._on_active_layer)
        self._bind_keys()
        warm_up()

    @property
    def worker(self) -> GeneratorWorker | None:
        """The latest proposal's worker (tests wait on it)."""
        return self.runner.worker

    # -- construction ----------------------------------------------------------
    def _build_ui(self) -> None:
        self.image_combo = narrow(QComboBox())
        self.image_combo.setToolTip(strings.IMAGE_TIP)
        self.model_combo = narrow(RefreshingComboBox(self.refresh_models))
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
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # indeterminate: one inference has no meaningful percentage
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.progress.setVisible(False)
        keep = self.progress.sizePolicy()
        keep.setRetainSizeWhenHidden(True)  # showing it re-laid out the whole dock at every proposal
        self.progress.setSizePolicy(keep)
        self.status_label = wrapping(QLabel(strings.STATUS_IDLE))
        self.registry_problem = wrapping(QLabel(""))  # shown only while models/CURRENT is damaged
        self.registry_problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # to copy the command
        self.registry_problem.setVisible(False)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow(strings.IMAGE_LABEL, self.image_combo)
        form.addRow(strings.MODEL_LABEL, model_row)
        form.addRow(strings.DEVICE_LABEL, self.device_combo)

        self.worklist_panel = WorklistPanel()
        self.auto_propose = self.worklist_panel.auto_propose
        self.auto_propose.setChecked(self.state.auto_propose)
        self.convention = ConventionBox(self.state, self.review.choose_convention)  # the worklist's lung convention, a view of the state
        self.model_info = wrapping(QLabel(strings.MODEL_INFO_NONE))
        self.unsure = UnsureOverlay(self.state, self.review.display.refresh_info)  # its box: "Show where unsure"
        self.controls = QuickControls(self.state.labels_layer, self.review.reset_to_proposal)
        self.readouts = ReadoutsLabel()
        self.accept_button = QPushButton(strings.ACCEPT)
        self.accept_button.setToolTip(strings.ACCEPT_TIP)
        self.skip_button = QPushButton(strings.SKIP)
        self.skip_button.setToolTip(strings.SKIP_TIP)
        self.skip_button.setEnabled(False)  # only a worklist case can be skipped
        self.actions = ActionBar(self.worklist_panel.previous, self.worklist_panel.next, self.controls.right,
                                 self.controls.left, self.accept_button, self.skip_button, self.writer,
                                 tools=(self.controls.refine, self.controls.reset))

        self.finetune = FinetunePanel(self.state.store_dir, device=lambda: self.state.device)
        self.history = HistoryPanel(self.state.store_dir)

        review_tab = column(
            group(strings.WORKLIST_TITLE, self.worklist_panel, self.convention),
            group(strings.CORRECT_TITLE, self.model_info, self.unsure.toggle, self.controls, self.readouts),
        )
        model_tab = column(group(strings.FINETUNE, self.finetune), group(strings.HISTORY_TITLE, self.history))
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)  # no frame around the pages: its pixels go to the controls in a 240-px dock
        self.tabs.addTab(review_tab, strings.TAB_REVIEW)
        self.tabs.addTab(model_tab, strings.TAB_MODEL)

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(2, 2, 2, 2)  # every pixel of width is the canvas's on a laptop
        layout.addLayout(form)
        layout.addWidget(self.registry_problem)
        layout.addWidget(self.propose_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addWidget(self.tabs)
        layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll, 1)
        outer.addWidget(self.actions)  # outside the scroll area: Accept and Next never scroll away
        self.setMinimumWidth(DOCK_WIDTH - 20)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        # napari sizes a new dock from its hint; a scroll area's hint would be the content's full height
        return QSize(DOCK_WIDTH, 600)

    def _connect(self) -> None:
        state, review = self.state, self.review
        # the boxes report the user's choice to the state, and show the state (never the other way round)
        self.image_combo.currentIndexChanged.connect(lambda _i: state.set_image(self.selected_image_layer()))
        self.model_combo.currentTextChanged.connect(lambda _t: state.set_model(self.selected_model()))
        self.device_combo.currentTextChanged.connect(state.set_device)
        state.device_changed.connect(self._show_device)
        state.set_device(self.device_combo.currentText())
        self.propose_button.clicked.connect(self.propose)
        self.runner.finished.connect(self.proposal_finished)
        state.status.connect(self.set_status)
        state.running_changed.connect(self._on_running)
        state.image_changed.connect(self._on_image_changed)
        state.case_changed.connect(self._on_case_changed)
        state.models_changed.connect(self._on_models_changed)

        self.worklist_panel.open_folder_clicked.connect(self._browse_folder)
        self.worklist_panel.open_pacs_clicked.connect(lambda: open_pacs_dialog(self, self.review.open_folder))
        self.worklist_panel.case_clicked.connect(review.open_case)
        self.worklist_panel.step_clicked.connect(review.step)
        self.worklist_panel.only_unreviewed.toggled.connect(lambda on: setattr(state, "only_unreviewed", on))
        self.worklist_panel.least_sure_first.toggled.connect(lambda on: setattr(state, "least_sure_first", on))
        self.auto_propose.toggled.connect(lambda on: setattr(state, "auto_propose", on))
        self.accept_button.clicked.connect(review.accept)
        self.skip_button.clicked.connect(review.skip)
        state.model_info.connect(self.model_info.setText)
        state.stats_changed.connect(self._show_readouts)
        state.worklist_shown.connect(self.worklist_panel.show_worklist)
        state.worklist_shown.connect(self.actions.show_for)
        state.case_refreshed.connect(self.worklist_panel.refresh)
        state.labels_shown.connect(self.controls.apply_to)
        self.controls.refine.toggled.connect(review.refine.set_on)
        review.refine.mode_changed.connect(self.controls.show_refine)

        self.finetune.finished.connect(lambda _result: state.registry_changed())
        self.finetune.promoted.connect(lambda _version: state.registry_changed())
        self.finetune.repropose_requested.connect(lambda version: review.propose(model=version))
        self.history.current_changed.connect(lambda _version: state.registry_changed())
        state.stored.connect(lambda _case_id: self.history.refresh_payoff())

    def _bind_keys(self) -> None:
        controls = self.controls
        actions = {
            "next": lambda: self.review.step(1), "previous": lambda: self.review.step(-1), "accept": self.review.accept,
            "skip": self.review.skip, "right": lambda: controls.set_label(RIGHT_LUNG), "left": lambda: controls.set_label(LEFT_LUNG),
            "eraser": controls.erase, "bigger": lambda: controls.grow_brush(True), "smaller": lambda: controls.grow_brush(False),
            "refine": self.review.refine.toggle,
        }
        self.shortcuts = keys.bind(self, actions)  # from any focus in napari's window
        for key, name in SHORTCUTS.items():
            action = actions[name]
            self.viewer.bind_key(key, lambda _viewer, action=action: action(), overwrite=True)

    # -- reacting to the state ---------------------------------------------------
    def _on_running(self, running: bool) -> None:
        self.propose_button.setEnabled(not running)
        self.progress.setVisible(running)

    def _on_image_changed(self) -> None:
        image = self.state.image()
        if image is not None and self.image_combo.currentData() != image.unique_id:
            self.refresh_image_layers(select=image)
        self.skip_button.setEnabled(self.state.reviewing_case())

    def _on_case_changed(self) -> None:
        # a fine-tune result and its Re-propose button belong to the case it was run from
        self.finetune.clear_result()
        self.skip_button.setEnabled(self.state.reviewing_case())

    def _on_models_changed(self) -> None:
        self.refresh_models()
        self.history.refresh()
        result = self.finetune.result
        if result is not None:
            self.history.select(result["version"])

    def _show_readouts(self) -> None:
        xray = self.state.xray if self.state.reviewing_case() else None
        image = self.state.image()
        # an image opened by our reader carries its spacing in napari's record of the file (an input, not our state)
        spacing = xray.spacing if xray is not None else (image.metadata.get("spacing_mm") if image is not None else None)
        self.readouts.show_stats(self.state.stats, spacing)

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, strings.OPEN_FOLDER_TIP)
        if folder:
            self.review.open_folder(folder)

    def hideEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        # Closing napari (or the dock, or minimising) hides this widget first: queue any unsaved
        # edits as a draft, and never wait for the writer here (it waited up to 60 s, frozen).
        # The writer's thread puts them on disk: napari's window closes at once, and if the
        # process then exits, Python joins that thread first (concurrent.futures finishes every
        # queued write before its threads end), so nothing queued is lost on close.
        self.review.edits.flush()
        super().hideEvent(event)

    # -- choices ---------------------------------------------------------------
    def image_layers(self) -> list[Image]:
        return [layer for layer in self.viewer.layers if isinstance(layer, Image) and not is_overlay(layer)]

    def refresh_image_layers(self, select: Image | None = None) -> None:
        """Re-list Image layers, keeping the current choice (even if renamed) unless ``select`` is given.

        Items carry the layer's ``unique_id`` because names change and the viewer napari gives a
        plugin is a proxy, so layer objects cannot be compared with ``is``.
        """
        keep = select.unique_id if select is not None else self.image_combo.currentData()
        self.image_combo.blockSignals(True)  # one state update below, not one per item
        self.image_combo.clear()
        for layer in self.image_layers():
            self.image_combo.addItem(layer.name, layer.unique_id)
            self.image_combo.setItemData(self.image_combo.count() - 1, layer.name, Qt.ItemDataRole.ToolTipRole)
        index = self.image_combo.findData(keep)
        if index >= 0:
            self.image_combo.setCurrentIndex(index)
        self.image_combo.blockSignals(False)
        self.state.set_image(self.selected_image_layer())

    def _on_layers_changed(self, event: Any = None) -> None:
        inserted = getattr(event, "value", None) if getattr(event, "type", "") == "inserted" else None
        # a newly added image is almost always the one the user wants to segment next
        self.refresh_image_layers(select=inserted if isinstance(inserted, Image) and not is_overlay(inserted) else None)

    def _on_active_layer(self, event: Any = None) -> None:
        """Selecting an image's mask in the layer list makes that image the one reviewed."""
        active = self.viewer.layers.selection.active
        if isinstance(active, Labels):
            image = layers.image_of(self.viewer, active)
            if image is not None:
                self.refresh_image_layers(select=image)

    def selected_image_layer(self) -> Image | None:
        layer = layers.find_layer(self.viewer, self.image_combo.currentData())
        return layer if isinstance(layer, Image) else None

    def refresh_models(self) -> None:
        """Re-list registry versions, marking the current one; keeps the user's pick or typed path.

        After a registry change the state's pick is None, so the box shows the current version.
        """
        keep = self.state.model
        registry = Registry()
        current, problem = read_current(registry)
        self.registry_problem.setText(strings.REGISTRY_DAMAGED.format(message=problem) if problem else "")
        self.registry_problem.setVisible(problem is not None)
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for card in registry.cards():
            label = card.version + (strings.CURRENT_SUFFIX if card.version == current else "")
            self.model_combo.addItem(label, card.version)
            self.model_combo.setItemData(self.model_combo.count() - 1, f"{label}: {card.status}", Qt.ItemDataRole.ToolTipRole)
        index = self.model_combo.findData(keep or current)
        if index >= 0:
            self.model_combo.setCurrentIndex(index)
        elif keep:
            self.model_combo.setEditText(keep)
        else:
            self.model_combo.setCurrentIndex(-1)  # no current version (CURRENT damaged): never guess one
        self.model_combo.setToolTip(f"{self.model_combo.currentText()}\n\n{strings.MODEL_TIP}")
        # an editable box scrolls its text to the end when narrow ("lt-2 (current)"); the version's start names it
        self.model_combo.lineEdit().setCursorPosition(0)
        view = self.model_combo.view()
        view.setMinimumWidth(view.sizeHintForColumn(0) + 24)  # the list shows full names, however narrow the box
        self.model_combo.blockSignals(False)
        self.state.set_model(self.selected_model())

    def select_model(self, version: str) -> None:
        self.state.set_model(version)
        self.refresh_models()

    def selected_model(self) -> str | None:
        """A registry version, a typed path, or None (= the registry's current version)."""
        text = self.model_combo.currentText().strip()
        index = self.model_combo.findText(text)
        if index >= 0:
            return self.model_combo.itemData(index)
        return text or None

    def _show_device(self, device: str) -> None:
        if self.device_combo.currentText() != device:
            self.device_combo.setCurrentText(device)

    def _fill_devices(self) -> None:
        for name in DEVICE_CHOICES:
            self.device_combo.addItem(name)
            if name != "auto" and not device_available(name):
                item = self.device_combo.model().item(self.device_combo.count() - 1)
                item.setEnabled(False)
                item.setToolTip(strings.DEVICE_UNAVAILABLE_TIP)

    def _browse_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, strings.BROWSE_TIP)
        if folder:
            self.model_combo.setEditText(folder)

    # -- actions -----------------------------------------------------------------
    def propose(self) -> GeneratorWorker | None:
        """Propose a mask for the chosen image in a background worker (also kept as ``self.worker``)."""
        return self.review.propose()

    def lungs_layer(self) -> Labels | None:
        """The labels layer being corrected: the chosen image's own mask."""
        return self.state.labels_layer()

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)
