"""Quick correction controls: brush size, right/left lung label, and reset to the proposal.

Painting, erasing, fill and undo stay napari's own; these only set the ``lungs`` layer's
properties so the clinician does not have to hunt for them in the layer controls.
"""

from __future__ import annotations

from collections.abc import Callable

from napari.layers import Labels
from qtpy.QtWidgets import QButtonGroup, QGridLayout, QLabel, QPushButton, QSpinBox, QWidget

from ..images.labels import LEFT_LUNG as LEFT
from ..images.labels import RIGHT_LUNG as RIGHT
from . import strings
from .layers import follow


class QuickControls(QWidget):
    def __init__(self, layer: Callable[[], Labels | None], reset: Callable[[], None]) -> None:
        super().__init__()
        self._layer = layer  # the labels layer being corrected, looked up on each use: it follows the image
        self.brush = QSpinBox()
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
        grid = QGridLayout(self)  # two rows: one row of five controls would widen the dock
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(QLabel(strings.BRUSH), 0, 0)
        grid.addWidget(self.brush, 0, 1)
        grid.addWidget(self.right, 1, 0)
        grid.addWidget(self.left, 1, 1)
        grid.addWidget(self.reset, 2, 0, 1, 2)

    def apply_to(self, layer: Labels) -> None:
        """Give the labels layer now being corrected the chosen brush and label, ready to paint."""
        follow(layer, brush_size=self.brush.value(), selected_label=RIGHT if self.right.isChecked() else LEFT, mode="paint")

    def set_label(self, label: int) -> None:
        (self.right if label == RIGHT else self.left).setChecked(True)
        layer = self._layer()
        if layer is not None:
            layer.selected_label = label
            layer.mode = "paint"

    def _set_brush(self, size: int) -> None:
        layer = self._layer()
        if layer is not None:
            layer.brush_size = size
