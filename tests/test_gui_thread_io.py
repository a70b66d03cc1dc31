"""The GUI thread writes no file during review: proposals, drafts, statuses and accepts go to the
dock's writer thread. Every write is seen through Python's audit hooks (the events ``open`` with a
writing mode, ``tempfile.mkstemp`` and ``os.rename``, which atomic writes go through), in a real
viewer with a real model, and the thread that made it is recorded.

Run under a display: ``xvfb-run -a pytest tests/test_gui_thread_io.py``.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from napari_lung_unet.settings import corrections_dir
from napari_lung_unet.store.worklist import ACCEPTED, SKIPPED, Worklist

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

WAIT_MS = 120_000
_WRITES: list[tuple[str, str, bool]] = []  # (event, path, on the main thread) while recording
_RECORDING = threading.Event()


def _hook(event: str, args: tuple) -> None:
    if not _RECORDING.is_set():
        return
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
        if not writing:
            return
    elif event == "tempfile.mkstemp":
        path = args[0]
    elif event == "os.rename":
        path = args[1]
    else:
        return
    _WRITES.append((event, str(path), threading.current_thread() is threading.main_thread()))


sys.addaudithook(_hook)  # hooks cannot be removed: it records only while _RECORDING is set


def test_review_writes_nothing_on_the_gui_thread(docked_widget, qtbot, xray_folder: Path):
    widget = docked_widget
    review = widget.review
    roots = (str(xray_folder), str(corrections_dir()))
    _WRITES.clear()
    _RECORDING.set()
    try:
        with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
            assert review.open_folder(xray_folder)
        lungs = widget.viewer.layers["lungs"]
        lungs.brush_size = 10
        lungs.paint((60, 60), 2)
        qtbot.wait(600)  # past the draft's debounce
        with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
            widget.worklist_panel.next.click()
        with qtbot.waitSignals([widget.proposal_finished, review.case_accepted], timeout=WAIT_MS):
            widget.accept_button.click()
        widget.skip_button.click()
        review.save_draft_now()  # waits for the writer: everything asked for is on disk now
    finally:
        _RECORDING.clear()
    ours = [(event, path, main) for event, path, main in _WRITES if path.startswith(roots)]
    assert any(path.endswith(".png") and "drafts" in path for _e, path, _m in ours)  # the hook saw the writes
    assert any("proposals" in path for _e, path, _m in ours) and any(path.startswith(roots[1]) for _e, path, _m in ours)
    on_gui = [(event, path) for event, path, main in ours if main]
    assert on_gui == []
    statuses = [c.status for c in Worklist(xray_folder).cases]
    assert statuses[1] == ACCEPTED and statuses[2] == SKIPPED  # and the state file says what happened
