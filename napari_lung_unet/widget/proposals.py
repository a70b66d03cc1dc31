"""Runs one proposal at a time in a napari ``thread_worker`` and reports back on the GUI thread.

The slow part (model loading, inference) is :func:`.engine.run_proposal`, which only sees plain
data (:class:`.state.ProposalRequest`); this object starts it, relays its status lines, and
records the outcome in the dock state. Writing the mask into a layer is the review's job.
"""

from __future__ import annotations

from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Signal

from . import strings
from .dock_state import DockState
from .engine import run_proposal
from .state import ProposalRequest, ProposalResult


class ProposalRunner(QObject):
    status = Signal(str)  # a line for the dock's status label
    returned = Signal(object)  # the ProposalResult, before ``finished``
    finished = Signal(object)  # after each run: the ProposalResult, or None if it failed

    def __init__(self, state: DockState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.worker: GeneratorWorker | None = None  # the latest run's worker (tests wait on it)
        self._result: ProposalResult | None = None

    def start(self, request: ProposalRequest) -> GeneratorWorker | None:
        if self.state.running:
            return None
        self.state.set_running(True)
        self.state.last_error = None
        self._result = None
        worker = create_worker(
            run_proposal,
            request,
            _start_thread=False,
            # connecting "errored" also stops napari re-raising worker errors as tracebacks
            _connect={"yielded": self.status.emit, "returned": self._on_returned, "errored": self._on_error,
                      "finished": self._on_finished},
        )
        self.worker = worker
        worker.start()
        return worker

    def _on_returned(self, result: ProposalResult) -> None:
        self._result = self.state.last_result = result
        self.state.history.append(result.model_version)
        self.returned.emit(result)
        self.status.emit(strings.STATUS_DONE.format(version=strings.short_name(result.model_version), device=result.device, seconds=result.seconds))

    def _on_error(self, exc: BaseException) -> None:
        # expected problems (bad image, unknown model, missing GPU) are ValueErrors with clear text
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        self.state.last_error = message
        self.status.emit(strings.STATUS_FAILED.format(message=message))
        show_error(strings.ERROR_PREFIX + message)

    def _on_finished(self) -> None:
        self.state.set_running(False)
        self.finished.emit(self._result)
