"""Runs one proposal at a time in a napari ``thread_worker`` and reports back on the GUI thread.

The slow part (model loading, inference) is :func:`.engine.run_proposal`, which only sees plain
data (:class:`.state.ProposalRequest`); this object captures the request from the dock state,
starts it, relays its status lines, and records what is running in the state. Writing the mask
into a layer is the review's job.
"""

from __future__ import annotations

from napari.layers import Image
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Signal

from . import strings
from .dock_state import DockState
from .engine import run_proposal
from .state import ProposalRequest, ProposalResult


def request_for(state: DockState, image: Image, model: str | None) -> ProposalRequest:
    """What the model needs to propose for ``image``, captured on the GUI thread (the refine reuses it)."""
    return ProposalRequest(
        image=image.data[0] if image.multiscale else image.data,  # full resolution
        rgb=bool(image.rgb),
        layer_name=image.name,
        model=model,
        device=state.device,
        convention=state.convention if state.is_case_image(image) else None,
        case_id=state.case_id_for(image),
        worklist=str(state.worklist.folder) if state.is_case_image(image) and state.worklist is not None else None,
        image_id=image.unique_id,
        token=state.life.token if state.is_case_image(image) else None,
        generation=state.life.generation(image.unique_id),
    )


class ProposalRunner(QObject):
    returned = Signal(object)  # the ProposalResult, before ``finished``
    finished = Signal(object)  # after each run: the ProposalResult, or None if it failed

    def __init__(self, state: DockState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.worker: GeneratorWorker | None = None  # the latest run's worker (tests wait on it)
        self._result: ProposalResult | None = None

    def propose(self, model: str | None = None, image: Image | None = None) -> GeneratorWorker | None:
        """Propose a mask for ``image`` (default: the reviewed one) with ``model`` (default: the state's pick)."""
        state = self.state
        if state.running:
            return None
        image = image if image is not None else state.image()
        if image is None:
            state.status.emit(strings.STATUS_NO_IMAGE)
            show_error(strings.ERROR_PREFIX + strings.STATUS_NO_IMAGE)
            return None
        return self._start(request_for(state, image, model or state.model))

    def _start(self, request: ProposalRequest) -> GeneratorWorker:
        self.state.set_running(True)
        self._result = None
        worker = create_worker(
            run_proposal,
            request,
            _start_thread=False,
            # connecting "errored" also stops napari re-raising worker errors as tracebacks
            _connect={"yielded": self.state.status.emit, "returned": self._on_returned, "errored": self._on_error,
                      "finished": self._on_finished},
        )
        self.worker = worker
        worker.start()
        return worker

    def _on_returned(self, result: ProposalResult) -> None:
        self._result = result
        self.returned.emit(result)
        self.state.status.emit(strings.STATUS_DONE.format(version=strings.short_name(result.model_version), device=result.device, seconds=result.seconds))

    def _on_error(self, exc: BaseException) -> None:
        # expected problems (bad image, unknown model, missing GPU) are ValueErrors with clear text
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        self.state.status.emit(strings.STATUS_FAILED.format(message=message))
        show_error(strings.ERROR_PREFIX + message)

    def _on_finished(self) -> None:
        self.state.set_running(False)
        self.finished.emit(self._result)
