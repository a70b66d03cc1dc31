"""Quick correction controls: brush size, right/left lung label, eraser, reset to the proposal.

Painting, erasing, fill and undo stay napari's own; these only set the corrected ``lungs`` layer's
properties so the clinician does not have to hunt for them in the layer controls. The right/left,
Refine and Reset buttons live in the dock's action bar (always on screen); the brush sits with the readouts.
"""

from __future__ import annotations

from collections.abc import Callable

from napari.layers import Labels
from qtpy.QtCore import QEvent, Qt
from qtpy.QtWidgets import QButtonGroup, QGridLayout, QLabel, QPushButton, QSpinBox, QWidget

from ..images.labels import LEFT_LUNG as LEFT
from ..images.labels import RIGHT_LUNG as RIGHT
from . import strings
from .layers import follow

BRUSH_STEP = 1.25  # the ] and [ keys: a quarter bigger or smaller, at least one pixel


class _BrushBox(QSpinBox):
    """A number box that lets the review's letter and bracket keys through (nothing but digits is typed here)."""

    def event(self, event: QEvent) -> bool:  # noqa: D102 - Qt override
        if event.type() == QEvent.Type.ShortcutOverride and not event.text().isdigit() and event.key() not in _EDIT_KEYS:
            event.ignore()  # not claimed: the window's shortcut fires
            return False
        return super().event(event)


_EDIT_KEYS = {Qt.Key.Key_Backspace, Qt.Key.Key_Delete, Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down,
              Qt.Key.Key_Home, Qt.Key.Key_End, Qt.Key.Key_Return, Qt.Key.Key_Enter}


class QuickControls(QWidget):
    def __init__(self, layer: Callable[[], Labels | None], reset: Callable[[], None]) -> None:
        super().__init__()
        self._layer = layer  # the labels layer being corrected, looked up on each use: it follows the image
        self.brush = _BrushBox()
        self.brush.setRange(1, 400)
        self.brush.setValue(25)
        self.brush.valueChanged.connect(self._set_brush)
        self.right = QPushButton(strings.RIGHT_LUNG)
        self.left = QPushButton(strings.LEFT_LUNG)
        group = QButtonGroup(self)
        for button, label in ((self.right, RIGHT), (self.left, LEFT)):
            button.setCheckable(True)
            group.addButton(button, label)
        self.right.setChecked(True)
        group.idClicked.connect(self.set_label)
        self.reset = QPushButton(strings.RESET)
        self.reset.setToolTip(strings.RESET_TIP)
        self.reset.clicked.connect(reset)
        self.refine = QPushButton(strings.REFINE)  # the dock connects it to the review's RefineTool
        self.refine.setCheckable(True)
        self.refine.setToolTip(strings.REFINE_TIP)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(QLabel(strings.BRUSH), 0, 0)
        grid.addWidget(self.brush, 0, 1)
        # Reset and Refine sit in the dock's action bar, always on screen at 1366×768 (issue 33)

    def apply_to(self, layer: Labels) -> None:
        """Give the labels layer now being corrected the chosen brush and label, ready to paint."""
        follow(layer, brush_size=self.brush.value(), selected_label=RIGHT if self.right.isChecked() else LEFT, mode="paint")

    def show_refine(self, on: bool) -> None:
        """The Refine button shows the tool's mode (it may end by itself: another tool, another case)."""
        self.refine.blockSignals(True)
        self.refine.setChecked(on)
        self.refine.blockSignals(False)

    def set_label(self, label: int) -> None:
        (self.right if label == RIGHT else self.left).setChecked(True)
        layer = self._layer()
        if layer is not None:
            layer.selected_label = label
            layer.mode = "paint"

    def erase(self) -> None:
        layer = self._layer()
        if layer is not None:
            layer.mode = "erase"

    def grow_brush(self, bigger: bool) -> None:
        size = self.brush.value()
        self.brush.setValue(max(size + 1, round(size * BRUSH_STEP)) if bigger else min(size - 1, round(size / BRUSH_STEP)))

    def _set_brush(self, size: int) -> None:
        layer = self._layer()
        if layer is not None:
            layer.brush_size = size
