"""Small Qt helpers for the dock's layout: boxes, columns, narrow combo boxes, wrapping labels."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QComboBox, QGroupBox, QLabel, QSizePolicy, QVBoxLayout, QWidget

from ..nn.device import resolve_device

COMBO_CHARS = 4  # the least a combo box asks for (it grows to the dock's width); full names are in the list and tooltips


class RefreshingComboBox(QComboBox):
    """A combo box that re-reads its choices just before it opens (models appear while napari runs)."""

    def __init__(self, refresh: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._refresh = refresh

    def showPopup(self) -> None:  # noqa: N802 - Qt override
        self._refresh()
        super().showPopup()


def group(title: str, *widgets: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(2, 4, 2, 4)
    for widget in widgets:
        layout.addWidget(widget)
    return box


def column(*widgets: QWidget) -> QWidget:
    page = QWidget()
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 4, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    layout.addStretch(1)
    return page


def narrow(combo: QComboBox) -> QComboBox:
    """A combo box whose width does not grow with its longest item (version names can be long)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(COMBO_CHARS)
    return combo


def wrapping(label: QLabel) -> QLabel:
    """A label that wraps to the dock's width and never widens it: a word longer than a line
    (a path, a long case or model name) is cut at the edge; the text stays whole in ``text()``."""
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


def device_available(name: str) -> bool:
    try:
        resolve_device(name)
    except ValueError:
        return False
    return True
