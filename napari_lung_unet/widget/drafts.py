"""Autosave of the clinician's edits as a draft, so a crash loses at most the current brush stroke.

Each paint event restarts a short single-shot timer (debounce: one write per burst of strokes,
not per mouse move); when it fires, a copy of the labels goes to the dock's one disk writer.
Encoding a 20-Mpx PNG takes ~0.3 s, which would stall painting if done on the GUI thread. The
writer keeps writes in order, so the newest draft always lands last, and holds a draft in memory
until it is on disk, so reopening the case shows it at once. :meth:`flush` queues a pending
draft now (case switches, removing the layer, closing), without waiting for the disk.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from qtpy.QtCore import QObject, QTimer

from .writer import DiskWriter

DEBOUNCE_MS = 250


class DraftAutosaver(QObject):
    def __init__(self, writer: DiskWriter, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._writer = writer
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.flush)
        self._pending: tuple[Path, Callable[[], np.ndarray]] | None = None

    def schedule(self, path: Path, labels: Callable[[], np.ndarray]) -> None:
        """Ask for a save of ``labels()`` to ``path`` soon; repeated calls within the debounce make one write."""
        self._pending = (path, labels)
        self._timer.start()

    def flush(self) -> None:
        """Queue any pending draft for writing now."""
        self._timer.stop()
        if self._pending is None:
            return
        path, labels = self._pending
        self._pending = None
        snapshot = np.array(labels(), dtype=np.uint8, copy=True)  # the layer keeps changing on the GUI thread
        self._writer.save_mask(path, snapshot)

    def cancel(self) -> None:
        """Forget a pending save (the case was accepted, and its draft is written with the accept)."""
        self._timer.stop()
        self._pending = None
