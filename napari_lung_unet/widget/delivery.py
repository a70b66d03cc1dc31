"""Results of the dock's reader threads, delivered on the GUI thread, unless napari's window closed.

A read finishes on a reader thread; what it read must be shown on the GUI thread, and only while
there is still a viewer to show it in. Delivery is always queued, even when the read had already
finished as it was asked for, so a request returns before its result is used, whatever a cache held.
A result finishing after napari's window closed is dropped: added to the closed viewer, a layer made
napari abort in its layer controls.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from concurrent.futures import Future

from qtpy.QtCore import QEvent, QObject, Qt, Signal
from qtpy.QtWidgets import QWidget

log = logging.getLogger(__name__)


class _Arrivals(QObject):
    """Carries a finished read from a reader thread to the GUI thread (always queued)."""

    arrived = Signal(object)  # a callable, run on the GUI thread


class _CloseWatch(QObject):
    """Sees napari's window close: a read arriving after it must not add layers to a closed viewer
    (napari aborts in its layer controls). A close napari refuses (the user cancels) is told apart by
    the window still being visible."""

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self._window: weakref.ref[QWidget] | None = None  # weak: the dock must not keep napari's window alive
        self.close_seen = False

    @property
    def window(self) -> QWidget | None:
        return self._window() if self._window is not None else None

    def watch(self, window: QWidget) -> None:
        if window is not self.window:
            if self.window is not None:
                self.window.removeEventFilter(self)
            self._window, self.close_seen = weakref.ref(window), False
            window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self.window:
            if event.type() == QEvent.Type.Close:
                self.close_seen = True
            elif event.type() == QEvent.Type.Show:
                self.close_seen = False
        return False

    @property
    def closed(self) -> bool:
        window = self.window
        return self.close_seen and (window is None or not window.isVisible())


class Delivery(QObject):
    """``when_done(future, then)``: ``then(future)`` on the GUI thread once ``future`` is done.

    Its parent is the dock's state: when the dock goes, so do queued deliveries.
    """

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self._arrivals = _Arrivals(self)
        self._watch = _CloseWatch(self)
        self._arrivals.arrived.connect(lambda run: run(), Qt.ConnectionType.QueuedConnection)

    def when_done(self, future: Future, then: Callable[[Future], None]) -> None:
        dock = self.parent().parent() if self.parent() is not None else None  # the state's parent: the dock
        if isinstance(dock, QWidget):
            self._watch.watch(dock.window())  # napari's main window, once docked

        def deliver(done: Future) -> None:
            if self._watch.closed:
                log.info("dropped a read that finished after napari's window closed")
                return
            then(done)

        def arrived(done: Future) -> None:
            try:
                self._arrivals.arrived.emit(lambda: deliver(done))
            except RuntimeError:  # the dock was closed meanwhile: nobody to show it to
                pass

        future.add_done_callback(arrived)
