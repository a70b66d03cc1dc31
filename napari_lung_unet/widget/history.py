"""Model history: the registry's versions with their fine-tune metrics, the current one, rollback."""

from __future__ import annotations

from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QFont
from qtpy.QtWidgets import QAbstractItemView, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from ..nn.card import ModelCard
from ..nn.registry import Registry, RegistryError
from . import strings
from .current import read_current

CURRENT_MARK = "●"
MIN_ROWS = 3  # rows always visible, however much the result text above grows


def heldout_dice(card: ModelCard) -> str:
    """'before → after' held-out Dice of a fine-tuned version; '' for trained-from-scratch models."""
    before = card.metrics.get("before", {}).get("holdout_dice")
    after = card.metrics.get("after", {}).get("holdout_dice")
    if before is None or after is None:
        return ""
    return f"{before:.3f} → {after:.3f}"


class HistoryPanel(QWidget):
    current_changed = Signal(str)  # the version made current by a rollback

    def __init__(self) -> None:
        super().__init__()
        self.table = QTableWidget(0, len(strings.HISTORY_COLUMNS))
        self.table.setHorizontalHeaderLabels(strings.HISTORY_COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        # full version names: the table scrolls sideways in a narrow dock instead of eliding them
        self.table.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.rollback = QPushButton(strings.ROLLBACK)
        self.rollback.setToolTip(strings.ROLLBACK_TIP)
        self.rollback.clicked.connect(self.make_selected_current)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addWidget(self.rollback)
        self.refresh()

    def showEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        # napari's style sheet (a larger font) reaches the table only once it is shown: fit again
        super().showEvent(event)
        self.table.resizeColumnsToContents()

    def versions(self) -> list[str]:
        return [self.table.item(row, 1).text() for row in range(self.table.rowCount())]

    def refresh(self) -> None:
        registry = Registry()
        current, _problem = read_current(registry)  # the dock shows the problem; no row is marked current
        cards = registry.cards()
        self.table.setRowCount(len(cards))
        for row, card in enumerate(cards):
            values = [CURRENT_MARK if card.version == current else "", card.version, card.status, heldout_dice(card), card.created[:16]]
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(f"{card.version} ({card.status})" + (f": {card.notes}" if card.notes else ""))
                if card.version == current:
                    font = QFont()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        rows = min(max(len(cards), MIN_ROWS), 6)
        height = self.table.horizontalHeader().sizeHint().height() + 2 * self.table.frameWidth()
        height += rows * self.table.verticalHeader().defaultSectionSize()
        height += self.table.horizontalScrollBar().sizeHint().height()  # the sideways bar may take a row's room
        self.table.setMinimumHeight(height)

    def select(self, version: str) -> None:
        items = self.table.findItems(version, Qt.MatchFlag.MatchExactly)
        if items:
            self.table.selectRow(items[0].row())

    def make_selected_current(self) -> bool:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return False
        version = self.table.item(rows[0].row(), 1).text()
        try:
            Registry().set_current(version)  # refuses weights that do not load
        except RegistryError as exc:
            show_error(strings.ERROR_PREFIX + str(exc))
            return False
        self.refresh()
        show_info(strings.ERROR_PREFIX + strings.ROLLED_BACK.format(version=version))
        self.current_changed.emit(version)
        return True
