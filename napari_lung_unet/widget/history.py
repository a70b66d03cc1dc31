"""Model history: the registry's versions with their status and held-out Dice, the current one, rollback.

Each version is one row of two lines, its name above its status and Dice: in the 240-px dock a
fine-tuned version's name alone takes the table's whole width, so side-by-side columns scrolled
sideways and Status and Dice were out of sight. A name longer than the row is elided in the
middle; its tooltip has it whole.

Making a version current that the gate rejected, or could not verify, asks first: the clinician
confirms in a dialog that says what the gate found.

The switch itself runs on a worker thread: the registry loads the version's weights before it
points CURRENT at them, and waits for the registry's lock (up to 60 s while a fine-tune promotes).
Meanwhile the panel shows a wait and refuses a second switch; the rows and the model box follow
once it is done.

**Recheck on later cases** runs ``lung-unet models --recheck VERSION`` in its own process (it loads two
models and reads the store): the selected candidate against the current model on the corrections
accepted since it was made. Its line is shown under the buttons; a gain there is made current with
the button above, which asks first for a version the gate kept out.

Below the rows, the loop's payoff on the clinician's own cases (:mod:`.payoff_view`): per proposing
version, the cases accepted and how much of each proposal was changed. It is read from the store's
records on the same worker, after every accept and every change of the registry.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QFont
from qtpy.QtWidgets import (
    QAbstractItemView, QHeaderView, QLabel, QMessageBox, QProgressBar, QPushButton, QTableWidget, QTableWidgetItem,
    QVBoxLayout, QWidget,
)

from ..nn.card import ModelCard
from ..nn.registry import Registry, RegistryError
from ..store.payoff import VersionPayoff, payoff_by_version
from . import strings
from .current import read_current
from .delivery import on_gui_thread, prepare
from .payoff_view import PayoffView

log = logging.getLogger(__name__)

CURRENT_MARK = "●"
MIN_ROWS = 3  # rows always visible, however much the result text above grows
MAX_ROWS = 5
ASK_FIRST = ("rejected", "unverified")  # statuses the gate gave a version it did not make current
VERSION_ROLE = Qt.ItemDataRole.UserRole


def heldout_dice(card: ModelCard) -> str:
    """'before → after' held-out Dice of a fine-tuned version; '' for trained-from-scratch models."""
    before = card.metrics.get("before", {}).get("holdout_dice")
    after = card.metrics.get("after", {}).get("holdout_dice")
    if before is None or after is None:
        return ""
    return f"{before:.3f} → {after:.3f}"


HELDOUT_LINE = "Dice {dice}"  # a line of its own: beside the status, the 240-px dock elided its middle


def row_text(card: ModelCard) -> str:
    """The version's name, its status, then a fine-tune's held-out Dice before → after on a third line."""
    dice = heldout_dice(card)
    return f"{card.version}\n{card.status}" + (f"\n{HELDOUT_LINE.format(dice=dice)}" if dice else "")


class HistoryPanel(QWidget):
    current_changed = Signal(str)  # the version made current by a rollback
    payoff_shown = Signal()  # the payoff rows were read and shown
    rechecked = Signal(str)  # the recheck's line (or its error), once shown

    def __init__(self, store_dir: Path | None = None) -> None:
        super().__init__()
        self.store_dir = store_dir  # the corrections store whose records give the payoff (None: not shown)
        self.payoff = PayoffView()
        self.payoff.setVisible(store_dir is not None)
        self.payoff_rows: list[VersionPayoff] = []
        self._payoff_asked = 0  # the newest read asked for: an older one finishing later is dropped
        self.cards: dict[str, ModelCard] = {}
        self.confirm: QMessageBox | None = None  # the open "make it current anyway?" question
        self.switching: str | None = None  # the version being made current (on the worker)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lung-unet-registry")
        # a recheck takes minutes: on a thread of its own, so a rollback or a payoff read never waits behind it
        self._recheck_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lung-unet-recheck")
        prepare()  # the worker hands its result back through the dispatcher
        self.wait_label = QLabel("")
        self.wait_label.setWordWrap(True)
        self.wait_bar = QProgressBar()
        self.wait_bar.setRange(0, 0)  # indeterminate: loading weights and waiting for a lock have no percentage
        self.wait_bar.setTextVisible(False)
        self.wait_bar.setMaximumHeight(8)
        for widget in (self.wait_label, self.wait_bar):
            widget.setVisible(False)
        self.table = QTableWidget(0, len(strings.HISTORY_COLUMNS))
        self.table.setHorizontalHeaderLabels(strings.HISTORY_COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)  # the two lines are the item's own; a name is elided, never wrapped
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a version's date and its end both show
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.rollback = QPushButton(strings.ROLLBACK)
        self.rollback.setToolTip(strings.ROLLBACK_TIP)
        self.rollback.clicked.connect(self.make_selected_current)
        self.recheck = QPushButton(strings.RECHECK)
        self.recheck.setToolTip(strings.RECHECK_TIP)
        self.recheck.clicked.connect(self.recheck_selected)
        self.recheck.setVisible(store_dir is not None)
        self.recheck_result = QLabel("")
        self.recheck_result.setWordWrap(True)  # a long line wraps in the 240-px dock
        self.recheck_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.recheck_result.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addWidget(self.rollback)
        layout.addWidget(self.recheck)
        layout.addWidget(self.recheck_result)
        layout.addWidget(self.wait_label)
        layout.addWidget(self.wait_bar)
        layout.addWidget(self.payoff)
        self.refresh()

    def showEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        # napari's style sheet (a larger font) reaches the table only once it is shown: fit the rows again
        super().showEvent(event)
        self._fit_height()

    def versions(self) -> list[str]:
        return [self.table.item(row, 1).data(VERSION_ROLE) for row in range(self.table.rowCount())]

    def refresh(self) -> None:
        registry = Registry()
        current, _problem = read_current(registry)  # the dock shows the problem; no row is marked current
        cards = registry.cards()
        self.cards = {card.version: card for card in cards}
        self.table.setRowCount(len(cards))
        for row, card in enumerate(cards):
            tip = strings.HISTORY_TIP.format(version=card.version, status=card.status, created=card.created[:16])
            tip += f"\n{card.notes}" if card.notes else ""
            for col, value in enumerate((CURRENT_MARK if card.version == current else "", row_text(card))):
                item = QTableWidgetItem(value)
                item.setData(VERSION_ROLE, card.version)
                item.setToolTip(tip)
                if card.version == current:
                    font = QFont()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(row, col, item)
        self._fit_height()
        self.refresh_payoff()

    def refresh_payoff(self) -> None:
        """Read the payoff rows again on the worker (an accept, a fine-tune, a rollback)."""
        if self.store_dir is None:
            return
        self._payoff_asked += 1
        self._pool.submit(self._read_payoff, self.store_dir, self._payoff_asked)

    def _read_payoff(self, store_dir: Path, asked: int) -> None:
        try:
            rows = payoff_by_version(store_dir)[0] if store_dir.exists() else []
        except Exception:  # noqa: BLE001 - the payoff is a view: a store it cannot read leaves the last rows
            log.exception("could not read the payoff rows from %s", store_dir)
            return
        on_gui_thread(self, lambda: self._show_payoff(rows, asked))

    def _show_payoff(self, rows: list[VersionPayoff], asked: int) -> None:
        if asked != self._payoff_asked:
            return  # a newer read is on its way
        self.payoff_rows = rows
        self.payoff.show_rows(rows)
        self.payoff_shown.emit()

    def _fit_height(self) -> None:
        self.table.resizeRowsToContents()
        row = self.table.rowHeight(0) if self.table.rowCount() else 2 * self.table.verticalHeader().defaultSectionSize()
        rows = min(max(self.table.rowCount(), MIN_ROWS), MAX_ROWS)
        height = self.table.horizontalHeader().sizeHint().height() + 2 * self.table.frameWidth() + rows * row
        self.table.setMinimumHeight(height)

    def select(self, version: str) -> None:
        if version in (versions := self.versions()):
            self.table.selectRow(versions.index(version))

    def selected_version(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 1).data(VERSION_ROLE) if rows else None

    def make_selected_current(self) -> bool:
        """Start making the selected version current; True once started (:attr:`current_changed`
        says when it is). A rejected or unverified version is only made current after a yes in
        :attr:`confirm` (then False is returned at once)."""
        version = self.selected_version()
        if version is None:
            return False
        card = self.cards.get(version)
        if card is not None and card.status in ASK_FIRST:
            self._ask(card)
            return False
        return self._make_current(version)

    def recheck_selected(self) -> bool:
        """Recheck the selected version in a process of its own; True once started (:attr:`rechecked` says the line)."""
        version = self.selected_version()
        if version is None or self.store_dir is None:
            return False
        self.recheck.setEnabled(False)
        self.recheck_result.setText(strings.RECHECKING.format(version=version))
        self.recheck_result.setVisible(True)
        self._recheck_pool.submit(self._run_recheck, version, self.store_dir)
        return True

    def _run_recheck(self, version: str, store_dir: Path) -> None:
        """On the worker: the product's own command line (the widget never imports the training package)."""
        args = [sys.executable, "-m", "napari_lung_unet.cli", "models", "--recheck", version, "--corrections", str(store_dir)]
        try:
            done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=1800)
            # the finding is the first line (the next one gives the command a terminal user would type)
            line = (done.stdout.strip().splitlines()[:1] or done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"])[0]
        except (OSError, subprocess.SubprocessError) as exc:
            line = f"error: could not run the recheck: {exc}"
        on_gui_thread(self, lambda: self._on_rechecked(line))

    def _on_rechecked(self, line: str) -> None:
        self.recheck.setEnabled(True)
        self.recheck_result.setText(line)
        self.rechecked.emit(line)

    def _ask(self, card: ModelCard) -> None:
        why = card.notes or strings.ASK_NO_REASON
        box = QMessageBox(QMessageBox.Icon.Warning, strings.ASK_TITLE.format(status=card.status),
                          strings.ASK_TEXT.format(version=card.version, status=card.status, why=why),
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.button(QMessageBox.StandardButton.Yes).setText(strings.ASK_YES)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)  # Enter alone never makes it current
        box.finished.connect(lambda _code, version=card.version: self._answered(version))
        self.confirm = box
        box.open()  # window-modal, no nested event loop: the viewer keeps painting meanwhile

    def _answered(self, version: str) -> None:
        box, self.confirm = self.confirm, None
        if box is None:
            return
        yes = box.clickedButton() is box.button(QMessageBox.StandardButton.Yes)  # Esc or closing the box: no
        box.deleteLater()
        if yes:
            self._make_current(version)

    def _make_current(self, version: str) -> bool:
        """Make ``version`` current on the worker thread, with a wait shown; True once started."""
        if self.switching is not None:
            show_info(strings.ERROR_PREFIX + strings.HISTORY_BUSY.format(version=self.switching))
            return False
        self.switching = version
        self.rollback.setEnabled(False)
        self.wait_label.setText(strings.HISTORY_SWITCHING.format(version=version))
        for widget in (self.wait_label, self.wait_bar):
            widget.setVisible(True)
        self._pool.submit(self._switch, version)
        return True

    def _switch(self, version: str) -> None:
        """On the worker: load the weights and switch CURRENT under the registry's lock."""
        try:
            Registry().set_current(version)  # refuses weights that do not load
            error = None
        except RegistryError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - an unexpected failure still ends the wait, in one line
            error = f"cannot make {version!r} current: {exc}"
        on_gui_thread(self, lambda: self._on_switched(version, error))  # dropped if the panel was closed meanwhile

    def _on_switched(self, version: str, error: str | None) -> None:
        self.switching = None
        self.rollback.setEnabled(True)
        for widget in (self.wait_label, self.wait_bar):
            widget.setVisible(False)
        if error is not None:
            show_error(strings.ERROR_PREFIX + error)
            return
        self.refresh()
        show_info(strings.ERROR_PREFIX + strings.ROLLED_BACK.format(version=version))
        self.current_changed.emit(version)
