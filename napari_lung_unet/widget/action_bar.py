"""The action bar: Accept, Skip, Previous, Next, the right/left lung switch, Refine and Reset, below the dock's
scroll area, so they never scroll away on a 1366×768 screen whichever tab is open (the readouts
and everything else may scroll). For a PACS worklist it also says, next to Accept, whether
accepting stores the SEG back into the PACS, and lets that worklist's choice be changed.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QCheckBox, QFrame, QGridLayout, QPushButton, QSizePolicy, QWidget

from ..dicom.pacs_worklist import pacs_source, set_store_seg
from ..dicom.web import DicomWebError
from ..store.worklist import Worklist
from . import keys, strings
from .writer import DiskWriter

PACS_SEG = "Also store the SEG in PACS"
PACS_SEG_TIP = (
    "This worklist came from a PACS. While ticked, each Accept also stores the case's DICOM SEG "
    "into its study on the server (STOW-RS). Off unless you tick it; remembered per worklist."
)


class ActionBar(QFrame):
    def __init__(self, previous: QPushButton, next_: QPushButton, right: QPushButton, left: QPushButton,
                 accept: QPushButton, skip: QPushButton, writer: DiskWriter,
                 tools: tuple[QPushButton, QPushButton] | None = None) -> None:
        super().__init__()
        self._writer = writer
        self._folder: Path | None = None  # the open PACS worklist's folder
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.pacs_seg = QCheckBox(PACS_SEG)
        self.pacs_seg.setToolTip(PACS_SEG_TIP)
        self.pacs_seg.setVisible(False)  # only for a PACS worklist
        self.pacs_seg.toggled.connect(self._set_pacs_choice)
        grid = QGridLayout(self)
        grid.setContentsMargins(2, 2, 2, 2)
        grid.setSpacing(2)
        rows = [(previous, next_), (right, left)] + ([tools] if tools else []) + [(accept, skip)]
        for row, pair in enumerate(rows):
            for col, button in enumerate(pair):
                # never wider than the dock: a button's text is short; the tooltip says the rest
                button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
                grid.addWidget(button, row, col)
        grid.addWidget(self.pacs_seg, len(rows), 0, 1, 2)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        self.setToolTip(keys.tooltip())
        accept.setToolTip(strings.ACCEPT_TIP + "\n\n" + keys.tooltip())

    def show_for(self, worklist: Worklist) -> None:
        """A worklist opened: its own PACS choice, shown next to Accept (hidden for an ordinary folder)."""
        try:
            source = pacs_source(worklist.folder)
        except DicomWebError:
            source = None  # a damaged PACS file: Accept says so when it tries to send
        self._folder = worklist.folder if source is not None else None
        self.pacs_seg.blockSignals(True)
        self.pacs_seg.setChecked(source is not None and source.store_seg)
        self.pacs_seg.blockSignals(False)
        self.pacs_seg.setVisible(source is not None)

    def _set_pacs_choice(self, on: bool) -> None:
        if self._folder is not None:
            self._writer.submit(set_store_seg, self._folder, on)  # the accept's writer reads it, in order
