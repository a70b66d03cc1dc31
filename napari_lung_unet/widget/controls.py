"""Quick correction controls: brush size, right/left lung label, and reset to the proposal.

Painting, erasing, fill and undo stay napari's own; these only set the ``lungs`` layer's
properties so the clinician does not have to hunt for them in the layer controls.
"""

from __future__ import annotations

from collections.abc import Callable

from napari.layers import Labels
from qtpy.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QPushButton, QSpinBox, QWidget

from . import strings

RIGHT, LEFT = 1, 2


class QuickControls(QWidget):
    def __init__(self, layer: Callable[[], Labels | None], reset: Callable[[], None]) -> None:
        super().__init__()
        self._layer = layer  # looked up on each use: the lungs layer can be removed and re-added
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
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel(strings.BRUSH))
        row.addWidget(self.brush)
        row.addWidget(self.right)
        row.addWidget(self.left)
        row.addWidget(self.reset)

    def apply_to(self, layer: Labels) -> None:
        """Give a (new or reused) lungs layer the chosen brush and label."""
        layer.brush_size = self.brush.value()
        layer.selected_label = RIGHT if self.right.isChecked() else LEFT

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
