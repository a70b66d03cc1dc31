"""The worklist list view: cases with their status, Previous/Next, the unreviewed filter, and the
order (file order, or least sure first: the proposals' expected Dice, lowest first).

It only displays a :class:`~napari_lung_unet.store.worklist.Worklist` and reports clicks; the review
controller decides what opening a case means.
"""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..store.worklist import Case, Worklist
from . import strings
from .qt_bits import wrapping


class _CaseList(QListWidget):
    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        # about five rows: Qt's default hint (192 px) pushes Accept below a 768-px laptop screen
        return QSize(200, 96)


class WorklistPanel(QWidget):
    open_folder_clicked = Signal()
    open_pacs_clicked = Signal()
    case_clicked = Signal(int)  # index into the worklist
    step_clicked = Signal(int)  # -1 previous, +1 next

    def __init__(self) -> None:
        super().__init__()
        self.open_button = QPushButton(strings.OPEN_FOLDER)
        self.open_button.setToolTip(strings.OPEN_FOLDER_TIP)
        self.open_button.clicked.connect(self.open_folder_clicked)
        self.pacs_button = QPushButton(strings.OPEN_PACS)
        self.pacs_button.setToolTip(strings.OPEN_PACS_TIP)
        self.pacs_button.clicked.connect(self.open_pacs_clicked)
        self.list = _CaseList()
        self.list.setMinimumHeight(70)
        self.list.itemActivated.connect(lambda item: self.case_clicked.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.list.itemClicked.connect(lambda item: self.case_clicked.emit(item.data(Qt.ItemDataRole.UserRole)))
        self.only_unreviewed = QCheckBox(strings.ONLY_UNREVIEWED)
        self.only_unreviewed.setToolTip(strings.ONLY_UNREVIEWED_TIP)
        self.only_unreviewed.toggled.connect(self._apply_filter)
        self.least_sure_first = QCheckBox(strings.LEAST_SURE_FIRST)
        self.least_sure_first.setToolTip(strings.LEAST_SURE_FIRST_TIP)
        self.least_sure_first.toggled.connect(lambda _on: self.refresh())
        self.auto_propose = QCheckBox(strings.AUTO_PROPOSE)
        self.auto_propose.setToolTip(strings.AUTO_PROPOSE_TIP)
        self.auto_propose.setChecked(True)
        self.previous = QPushButton(strings.PREVIOUS)
        self.previous.setToolTip(strings.PREVIOUS_TIP)
        self.previous.clicked.connect(lambda: self.step_clicked.emit(-1))
        self.next = QPushButton(strings.NEXT)
        self.next.setToolTip(strings.NEXT_TIP)
        self.next.clicked.connect(lambda: self.step_clicked.emit(1))
        self.summary = wrapping(QLabel(""))  # a long summary must wrap, not widen the dock past the screen
        self.case_info = wrapping(QLabel(""))  # a long case id is cut at the edge, never widens the dock

        layout = QVBoxLayout(self)  # one control per row where two would widen a laptop's dock
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.open_button)
        layout.addWidget(self.pacs_button)
        layout.addWidget(self.list)
        layout.addWidget(self.only_unreviewed)  # each on its own row: side by side they widen the dock past 250 px
        layout.addWidget(self.least_sure_first)
        layout.addWidget(self.auto_propose)
        layout.addWidget(self.summary)
        # Previous and Next live in the dock's action bar, which never scrolls away
        layout.addWidget(self.case_info)
        self._worklist: Worklist | None = None
        self._rows: list[int] = []  # the case index shown on each row
        self._row_of: dict[int, int] = {}

    def show_worklist(self, worklist: Worklist) -> None:
        self._worklist = worklist
        self._rows = []
        self.refresh()

    def _order_rows(self) -> None:
        """Lay the rows out in the worklist's order (it moves as proposals and reviews come in)."""
        wl = self._worklist
        assert wl is not None
        order = wl.order(self.least_sure_first.isChecked())
        if order == self._rows:
            return
        self.list.clear()
        for index in order:
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, index)
            self.list.addItem(item)
            self._style(item, wl.cases[index])
        self._rows, self._row_of = order, {index: row for row, index in enumerate(order)}

    def refresh(self, case: Case | None = None) -> None:
        """Re-draw one case (or all) after a status change, and the summary and selection."""
        wl = self._worklist
        if wl is None:
            return
        self._order_rows()
        for index, c in enumerate(wl.cases):
            if case is None or c is case:
                self._style(self.list.item(self._row_of[index]), c)
        counts = wl.counts()
        todo = sum(c.unreviewed for c in wl.cases)
        # only what changed: a new text re-lays out the dock's wrapping labels, on the GUI thread
        _set_text(self.summary, strings.WORKLIST_SUMMARY.format(cases=strings.n_cases(len(wl)), accepted=counts["accepted"], skipped=counts["skipped"], todo=todo))
        current = wl.cases[wl.current]
        _set_text(self.case_info, strings.CASE_INFO.format(index=wl.current + 1, n=len(wl), case_id=current.case_id, status=current.status))
        if self.list.currentRow() != self._row_of[wl.current]:
            self.list.setCurrentRow(self._row_of[wl.current])
        self._apply_filter()

    def _style(self, item: QListWidgetItem, case: Case) -> None:
        flag = f"  {strings.UNCERTAIN_MARK}" if case.uncertain else ""
        flag += "  ✗" if case.error else ""
        text = strings.CASE_ITEM.format(symbol=strings.STATUS_SYMBOLS[case.status], case_id=case.case_id, status=case.status, flag=flag)
        if item.text() != text:
            item.setText(text)
        tip = [str(case.path)]
        if case.uncertain:
            tip.append(strings.CASE_ITEM_UNCERTAIN_TIP.format(confidence=case.confidence))
        if case.error:
            tip.append(case.error)
        if item.toolTip() != "\n".join(tip):
            item.setToolTip("\n".join(tip))

    def _apply_filter(self) -> None:
        if self._worklist is None:
            return
        only = self.only_unreviewed.isChecked()
        for index, case in enumerate(self._worklist.cases):
            # the open case stays visible so the clinician never loses sight of what they edit
            hidden = only and not case.unreviewed and index != self._worklist.current
            item = self.list.item(self._row_of[index])
            if item.isHidden() != hidden:
                item.setHidden(hidden)


def _set_text(label: QLabel, text: str) -> None:
    if label.text() != text:
        label.setText(text)
