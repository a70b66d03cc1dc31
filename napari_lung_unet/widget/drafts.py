"""Autosave of the clinician's edits as a draft, so a crash loses at most the current brush stroke.

Each paint event restarts a short single-shot timer (debounce: one write per burst of strokes,
not per mouse move); when it fires, a copy of the labels is written by one background thread.
Encoding a 20-Mpx PNG takes ~0.3 s, which would stall painting if done on the GUI thread. The
thread sees only a numpy copy and a path (no Qt, no layer), and a single thread keeps writes in
order so the newest draft always lands last. :meth:`flush` writes synchronously, for case
switches and closing, where nothing may be left pending.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from qtpy.QtCore import QObject, QTimer

DEBOUNCE_MS = 250


class DraftAutosaver(QObject):
    def __init__(self, write: Callable[[str, np.ndarray], object], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._write = write  # (case_id, labels) -> None; must be thread-safe (atomic file writes are)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lung-unet-draft")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._save_async)
        self._pending: tuple[str, Callable[[], np.ndarray]] | None = None
        self._last: Future | None = None
        self.saved = 0  # drafts written (tests and the status line read it)

    def schedule(self, case_id: str, labels: Callable[[], np.ndarray]) -> None:
        """Ask for a save of ``labels()`` soon; repeated calls within the debounce make one write."""
        self._pending = (case_id, labels)
        self._timer.start()

    def _save_async(self) -> None:
        if self._pending is None:
            return
        case_id, labels = self._pending
        self._pending = None
        snapshot = np.array(labels(), dtype=np.uint8, copy=True)  # the layer keeps changing on the GUI thread
        self._last = self._pool.submit(self._write_counted, case_id, snapshot)

    def _write_counted(self, case_id: str, snapshot: np.ndarray) -> None:
        self._write(case_id, snapshot)
        self.saved += 1

    def wait(self, timeout: float | None = 30.0) -> None:
        """Block until the background write (if any) has finished."""
        if self._last is not None:
            self._last.result(timeout=timeout)

    def flush(self) -> None:
        """Write any pending draft now (synchronously) and wait for earlier writes."""
        self._timer.stop()
        self._save_async()
        self.wait()

    def cancel(self) -> None:
        """Forget a pending save (the case was accepted or reset, and saved another way)."""
        self._timer.stop()
        self._pending = None

    def shutdown(self) -> None:
        self.flush()
        self._pool.shutdown(wait=True)
