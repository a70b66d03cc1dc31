"""Results of the dock's reader threads, delivered on the GUI thread, unless napari's window closed.

A read finishes on a reader thread; what it read must be shown on the GUI thread, and only while
there is still a viewer to show it in. Delivery is always queued, even when the read had already
finished as it was asked for, so a request returns before its result is used, whatever a cache held.
A result finishing after napari's window closed is dropped: added to the closed viewer, a layer made
napari abort in its layer controls.

Worker threads never emit a signal of an object the GUI thread may be deleting (the dock, as napari
closes): that race crashed the test process at teardown. They post through one dispatcher that
lives as long as the process, and the GUI thread checks that the receiver still exists.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from concurrent.futures import Future

from qtpy.QtCore import QEvent, QObject, Qt, QTimer, Signal
from qtpy.QtWidgets import QWidget

log = logging.getLogger(__name__)


class _Dispatcher(QObject):
    """Runs callables posted from any thread on the GUI thread (always queued)."""

    posted = Signal(object)  # a callable


_dispatcher: _Dispatcher | None = None


def _dispatch() -> _Dispatcher:
    """The process's one dispatcher, made on the GUI thread on first use and never deleted."""
    global _dispatcher
    if _dispatcher is None:
        _dispatcher = _Dispatcher()
        _dispatcher.posted.connect(lambda run: run(), Qt.ConnectionType.QueuedConnection)
    return _dispatcher


def alive(obj: QObject) -> bool:
    """Whether the Qt object behind ``obj`` still exists (napari deletes the dock as it closes)."""
    try:
        obj.objectName()
    except RuntimeError:
        return False
    return True


def on_gui_thread(receiver: QObject, run: Callable[[], None]) -> None:
    """From any thread: ``run()`` on the GUI thread, if ``receiver`` still exists then.
    The dispatcher must exist first (:class:`Delivery` or :func:`prepare` made it, on the GUI thread)."""
    assert _dispatcher is not None, "prepare() on the GUI thread first"

    def run_if_alive() -> None:
        if alive(receiver):
            run()
        else:
            log.info("dropped a result that finished after napari's window closed (its dock is gone)")

    _dispatcher.posted.emit(run_if_alive)


def prepare() -> None:
    """Make the dispatcher (call on the GUI thread, before any worker posts)."""
    _dispatch()


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
        prepare()
        self._watch = _CloseWatch(self)

    def when_done(self, future: Future, then: Callable[[Future], None]) -> None:
        dock = self.parent().parent() if self.parent() is not None else None  # the state's parent: the dock
        if isinstance(dock, QWidget):
            self._watch.watch(dock.window())  # napari's main window, once docked

        def deliver(done: Future) -> None:
            if self._watch.closed:
                log.info("dropped a read that finished after napari's window closed")
                return
            then(done)

        future.add_done_callback(lambda done: on_gui_thread(self, lambda: deliver(done)))

    def later(self, run: Callable[[], None]) -> None:
        """``run()`` on a later turn of the GUI thread's event loop, after what is due now (a repaint,
        a timer), unless napari's window closed first or the dock went (the timer is its child)."""
        timer = QTimer(self)
        timer.setSingleShot(True)

        def fire() -> None:
            timer.deleteLater()
            if not self._watch.closed:
                run()

        timer.timeout.connect(fire)
        timer.start(0)
