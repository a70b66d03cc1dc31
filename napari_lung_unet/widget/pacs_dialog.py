""""Open from PACS…": list a DICOMweb server's studies, fetch the chosen ones, open them as a worklist.

Every request (QIDO-RS listing, WADO-RS fetching) runs in a worker, so the GUI thread never
waits on the network; it only fills the table and shows one-line errors. Credentials come from
the same environment variables as the CLI (:func:`napari_lung_unet.dicom.web.connect`). The fetched
studies land in a folder under ``$LUNG_UNET_HOME/pacs`` (:mod:`napari_lung_unet.dicom.pacs_worklist`),
which the dock opens exactly as "Open folder…" does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from napari.qt.threading import FunctionWorker, create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..dicom.pacs_worklist import fetch_worklist
from ..dicom.web import TOKEN_ENV, USER_ENV, DicomWebError, StudySummary, is_study_url, list_studies
from . import strings

URL_ENV = "LUNG_UNET_DICOMWEB_URL"  # the server the dialog starts with, so a site sets it once
COLUMNS = ("Patient", "Date", "Modality", "Description")

TITLE = "Open from PACS"
URL_PLACEHOLDER = "https://pacs.example.org/dicom-web"
URL_TIP = (
    f"The PACS's DICOMweb root. Credentials come from the environment: {TOKEN_ENV} (a bearer token), "
    f"or {USER_ENV} and its password variable, as for lung-unet predict."
)
LIST = "List studies"
STORE_SEG = "Accept stores the SEG back in the PACS"
STORE_SEG_TIP = "Each accepted case's DICOM SEG is also stored into its study on the server (STOW-RS)."
NEED_URL = "Enter the server's DICOMweb URL (http://… or https://…)."
LISTING = "Listing studies on {root}…"
LISTED = "{n} studies on {root}. Choose one or more, then Open."
CHOOSE = "Choose at least one study."
FETCHING = "Fetching {n} study(ies)…"


class PacsDialog(QDialog):
    """Choose studies on a DICOMweb server; emits ``folder_ready`` with their local worklist folder."""

    folder_ready = Signal(object)  # Path: the fetched studies, ready to open as a worklist

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(TITLE)
        self.url = QLineEdit(os.environ.get(URL_ENV, ""))
        self.url.setPlaceholderText(URL_PLACEHOLDER)
        self.url.setToolTip(URL_TIP)
        self.url.returnPressed.connect(self.list_studies)
        self.list_button = QPushButton(LIST)
        self.list_button.clicked.connect(self.list_studies)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.itemSelectionChanged.connect(self._enable)
        self.table.itemDoubleClicked.connect(lambda _item: self.open_chosen())
        self.store_seg = QCheckBox(STORE_SEG)
        self.store_seg.setToolTip(STORE_SEG_TIP)
        # off unless asked: a write into the hospital's archive is a choice a research user makes, per worklist
        self.store_seg.setChecked(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        self.open_button = self.buttons.button(QDialogButtonBox.StandardButton.Open)
        self.buttons.accepted.connect(self.open_chosen)
        self.buttons.rejected.connect(self.reject)

        row = QHBoxLayout()
        row.addWidget(self.url, 1)
        row.addWidget(self.list_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.store_seg)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.resize(640, 360)

        self.worker: FunctionWorker | None = None  # the latest request
        self.busy = False  # a request is in flight (the worker's own flag rises only once its thread runs)
        self._studies: list[StudySummary] = []
        self._open_when_fetched = False  # Cancel during a fetch: the studies stay cached, nothing opens
        self._enable()

    # -- listing -----------------------------------------------------------------
    def list_studies(self) -> None:
        root = self.url.text().strip().rstrip("/")
        if not is_study_url(root):
            self._say(NEED_URL)
            return
        self._studies = []  # the old server's rows must not stay choosable while another is listed
        self.table.setRowCount(0)
        self._start(list_studies, root, returned=self._show_studies, busy=LISTING.format(root=root))

    def _show_studies(self, studies: list[StudySummary]) -> None:
        self._studies = studies
        self.table.setRowCount(len(studies))
        for row, study in enumerate(studies):
            for column, text in enumerate((study.patient, _date(study.date), ", ".join(study.modalities), study.description)):
                item = QTableWidgetItem(text)
                item.setToolTip(str(study.url))
                self.table.setItem(row, column, item)
        self._say(LISTED.format(n=len(studies), root=studies[0].url.root if studies else self.url.text().strip()))

    def chosen(self) -> list[StudySummary]:
        return [self._studies[index.row()] for index in self.table.selectionModel().selectedRows()]

    # -- opening -------------------------------------------------------------------
    def open_chosen(self) -> None:
        chosen = self.chosen()
        if self.busy:  # a double-click in the table while a request is in flight
            return
        if not chosen:
            self._say(CHOOSE)
            return
        self._open_when_fetched = True
        root, uids = chosen[0].url.root, [study.url.study for study in chosen]
        self._start(fetch_worklist, root, uids, self.store_seg.isChecked(), returned=self._fetched, busy=FETCHING.format(n=len(uids)))

    def _fetched(self, result: tuple[Path, list[str]]) -> None:
        folder, notes = result
        for note in notes:  # an SR or an earlier SEG in a study: skipped, and said so
            show_info(strings.ERROR_PREFIX + note)
        self._say("")
        if self._open_when_fetched:
            self.accept()
            self.folder_ready.emit(folder)

    def reject(self) -> None:
        self._open_when_fetched = False
        super().reject()

    # -- workers -------------------------------------------------------------------
    def _start(self, function: Callable, *args: object, returned: Callable, busy: str) -> None:
        """Run ``function(*args)`` off the GUI thread; ``returned`` gets its result on the GUI thread."""
        self._say(busy)
        self.worker = create_worker(
            function, *args, _start_thread=False, _connect={"returned": returned, "errored": self._failed},
        )
        self.worker.finished.connect(self._done)
        self.busy = True
        self._enable()
        self.worker.start()

    def _done(self) -> None:
        self.busy = False
        self._enable()

    def _failed(self, exc: BaseException) -> None:
        # DicomWebError is one line naming the server or study; anything else gets its type named
        message = str(exc) if isinstance(exc, DicomWebError) else f"{type(exc).__name__}: {exc}"
        self._say(message)
        show_error(strings.ERROR_PREFIX + message)

    def _enable(self) -> None:
        self.list_button.setEnabled(not self.busy)
        self.url.setEnabled(not self.busy)
        self.open_button.setEnabled(not self.busy and bool(self.table.selectionModel().selectedRows()))

    def _say(self, text: str) -> None:
        self.status.setText(text)


def open_pacs_dialog(parent: QWidget, open_folder: Callable[[Path], object]) -> PacsDialog:
    """Show the dock's one PACS dialog (it keeps its URL and list between openings)."""
    dialog = parent.findChild(PacsDialog)
    if dialog is None:
        dialog = PacsDialog(parent)
        dialog.folder_ready.connect(open_folder)
    dialog.setWindowModality(Qt.WindowModality.NonModal)  # the clinician may keep reviewing meanwhile
    dialog.show()
    dialog.raise_()
    return dialog


def _date(dicom_date: str) -> str:
    """YYYYMMDD as YYYY-MM-DD (anything else as the server sent it)."""
    text = dicom_date.strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text
