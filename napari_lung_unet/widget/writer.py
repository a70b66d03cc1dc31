"""The dock's one disk writer: every file the review writes is written here, off the GUI thread.

Proposals, drafts, the worklist's state file and accepted cases are all written by one background
thread, in the order they were asked for, so a draft never overtakes the accept that follows it
and the newest state file always lands last. An fsync'd write can take hundreds of milliseconds
on a busy disk; on the GUI thread that was the freeze the heartbeat measured.

The GUI thread hands over plain data (numpy copies, JSON payloads, paths) and gets results and
errors back through a Qt signal, on its own thread. Until a mask is on disk the writer holds it
in memory (:meth:`pending_mask`), so reopening a case never reads an older file than what was
asked to be written. Several state-file saves queued in a burst are written once, with the newest
payload.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Signal

from ..store.atomic import atomic_write_png
from ..store.worklist import Worklist
from ..store.worklist_file import merge_state
from . import strings


class DiskWriter(QObject):
    _deliver = Signal(object, object)  # (callback, value): emitted on the writer thread, run on the GUI thread

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lung-unet-writer")
        self._lock = threading.Lock()
        self._masks: dict[Path, np.ndarray] = {}  # path -> the newest labels asked for, not yet on disk
        self._states: dict[Path, dict] = {}  # state file -> the newest payload, not yet on disk
        self._last: Future | None = None
        self._deliver.connect(lambda callback, value: callback(value))

    def submit(
        self, fn: Callable[..., Any], *args: Any,
        returned: Callable[[Any], None] | None = None, errored: Callable[[BaseException], None] | None = None,
    ) -> Future:
        """Run ``fn(*args)`` on the writer thread after everything queued before it."""

        report = errored or _report

        def run() -> Any:
            try:
                value = fn(*args)
            except Exception as exc:
                self._deliver.emit(report, exc)
                return None
            if returned is not None:
                self._deliver.emit(returned, value)
            return value

        self._last = self._pool.submit(run)
        return self._last

    # -- masks ------------------------------------------------------------------------
    def save_mask(self, path: Path, labels: np.ndarray, errored: Callable[[BaseException], None] | None = None) -> None:
        """Write ``labels`` (a copy the caller no longer changes) as a labels PNG at ``path``."""
        with self._lock:
            self._masks[path] = labels
        self.submit(self._write_mask, path, labels, errored=errored)

    def _write_mask(self, path: Path, labels: np.ndarray) -> None:
        try:
            atomic_write_png(path, np.asarray(labels, dtype=np.uint8))
        finally:
            with self._lock:
                if self._masks.get(path) is labels:  # a newer one asked meanwhile stays pending
                    del self._masks[path]

    def remove_mask(self, path: Path) -> None:
        """Delete the mask at ``path`` (if any) after everything queued before; until then it reads as gone."""
        gone = np.zeros(0, np.uint8)  # a pending empty mask: of no case's shape, so readers see no mask
        with self._lock:
            self._masks[path] = gone
        self.submit(self._remove_mask, path, gone)

    def _remove_mask(self, path: Path, gone: np.ndarray) -> None:
        try:
            path.unlink(missing_ok=True)
        finally:
            with self._lock:
                if self._masks.get(path) is gone:
                    del self._masks[path]

    def pending_mask(self, path: Path) -> np.ndarray | None:
        """The labels queued for ``path`` and not yet written (an empty array: queued for removal),
        or None (the file is current)."""
        with self._lock:
            return self._masks.get(path)

    # -- the worklist's state file ------------------------------------------------------
    def save_state(self, worklist: Worklist, errored: Callable[[BaseException], None] | None = None) -> None:
        """Write the worklist's statuses as they are now (snapshotted here, on the calling thread)."""
        path, payload = worklist.state_file, worklist.state_payload()
        with self._lock:
            queued = path in self._states
            self._states[path] = payload
        if not queued:
            self.submit(self._write_state, path, errored=errored)

    def _write_state(self, path: Path) -> None:
        with self._lock:
            payload = self._states.pop(path)
        merge_state(path, payload)  # merged case by case under a lock: another dock's accepts are kept

    # -- waiting ------------------------------------------------------------------------
    def wait(self, timeout: float | None = 60.0) -> None:
        """Block until everything queued so far is on disk (closing napari, tests)."""
        marker = self._pool.submit(lambda: None)
        marker.result(timeout=timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def _report(exc: BaseException) -> None:
    show_error(strings.ERROR_PREFIX + f"could not write to disk: {exc}")
