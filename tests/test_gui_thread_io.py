"""The GUI thread reads and writes no file during review, and never switches the registry.

Writes: proposals, drafts, statuses and accepts go to the dock's writer thread. Reads: a folder's
listing and state file, a case's X-ray and its two full-size masks (proposal, draft) are read on
reader threads, for Next, Previous, a case-list click and opening the folder alike (issue 33).
Registry: a rollback in Model history loads the version's weights and takes the registry's lock
on a worker. Hiding the dock (closing napari) queues the draft and never waits for the writer.

Every file access is seen through Python's audit hooks (the events ``open``, ``tempfile.mkstemp``,
``os.rename``, ``os.listdir`` and ``os.scandir``), in a real viewer with a real model, and the
thread that made it is recorded. Weights are read by safetensors' Rust code, which no audit hook
sees, so its reader and ``Registry.set_current`` are wrapped to record their thread (they still run).

Run under a display: ``xvfb-run -a pytest tests/test_gui_thread_io.py``.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication

from napari_lung_unet.nn import model_io
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.settings import corrections_dir
from napari_lung_unet.store.worklist import ACCEPTED, SKIPPED, Worklist

from case_open import wait_case_open

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

WAIT_MS = 120_000
_EVENTS: list[tuple[str, str, bool]] = []  # (what, path, on the main thread) while recording
_RECORDING = threading.Event()


def _hook(event: str, args: tuple) -> None:
    if not _RECORDING.is_set():
        return
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
        what = "write" if writing else "read"
    elif event == "tempfile.mkstemp":
        what, path = "write", args[0]
    elif event == "os.rename":
        what, path = "write", args[1]
    elif event in ("os.listdir", "os.scandir"):
        what, path = "list", args[0]
    else:
        return
    _EVENTS.append((what, str(path), threading.current_thread() is threading.main_thread()))


sys.addaudithook(_hook)  # hooks cannot be removed: it records only while _RECORDING is set


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch):
    """Record file accesses, weight reads and registry switches (with their thread) during the test."""
    calls: list[tuple[str, bool]] = []
    load_file, set_current = model_io.load_file, Registry.set_current

    def recorded_load_file(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(("weights", threading.current_thread() is threading.main_thread()))
        return load_file(*args, **kwargs)

    def recorded_set_current(self, version: str) -> None:  # noqa: ANN001
        calls.append(("set_current", threading.current_thread() is threading.main_thread()))
        set_current(self, version)

    monkeypatch.setattr(model_io, "load_file", recorded_load_file)
    monkeypatch.setattr(Registry, "set_current", recorded_set_current)
    _EVENTS.clear()
    _RECORDING.set()
    yield calls
    _RECORDING.clear()


def test_review_writes_nothing_on_the_gui_thread(docked_widget, qtbot, xray_folder: Path, recording):
    widget = docked_widget
    review = widget.review
    roots = (str(xray_folder), str(corrections_dir()))
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
    _RECORDING.clear()
    ours = [(what, path, main) for what, path, main in _EVENTS if what == "write" and path.startswith(roots)]
    assert any(path.endswith(".png") and "drafts" in path for _e, path, _m in ours)  # the hook saw the writes
    assert any("proposals" in path for _e, path, _m in ours) and any(path.startswith(roots[1]) for _e, path, _m in ours)
    on_gui = [(what, path) for what, path, main in ours if main]
    assert on_gui == []
    statuses = [c.status for c in Worklist(xray_folder).cases]
    assert statuses[1] == ACCEPTED and statuses[2] == SKIPPED  # and the state file says what happened


def test_cases_are_read_and_the_registry_switched_off_the_gui_thread(docked_widget, qtbot, xray_folder: Path, recording):
    """Opening the folder, Next, Previous, a case-list click and a rollback: nothing read on the GUI thread."""
    widget = docked_widget
    review, panel = widget.review, widget.worklist_panel
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        assert review.open_folder(xray_folder)
    lungs = widget.viewer.layers["lungs"]
    lungs.brush_size = 10
    lungs.paint((50, 50), 1)  # case0 gets a draft: Previous reads a proposal and a draft
    drafted = lungs.data.copy()
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        panel.next.click()
    widget.review.save_draft_now()  # case0's draft is on disk, no longer held by the writer
    panel.previous.click()
    wait_case_open(qtbot, widget, "case0")
    np.testing.assert_array_equal(lungs.data, drafted)  # its draft came back
    panel.list.itemClicked.emit(panel.list.item(1))  # a click in the case list
    wait_case_open(qtbot, widget, "case1")
    panel.list.itemClicked.emit(panel.list.item(2))
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        pass  # case2 had no proposal yet: it is read, shown and proposed

    bundled = Registry().bundled_version
    widget.history.select(bundled)
    with qtbot.waitSignal(widget.history.current_changed, timeout=WAIT_MS):
        assert widget.history.make_selected_current()
    _RECORDING.clear()

    assert Registry().current_version() == bundled
    folder = str(xray_folder)
    reads = [(what, path, main) for what, path, main in _EVENTS if what in ("read", "list") and path.startswith(folder)]
    images = [path for what, path, _m in reads if what == "read" and Path(path).parent == xray_folder]
    masks = [path for what, path, _m in reads if what == "read" and path.endswith(".png") and ".lung_unet" in path]
    assert len(set(images)) == 3 and any("drafts" in path for path in masks)  # the hook saw the reads
    assert ("list", folder) in {(what, path) for what, path, _m in reads}  # the folder's listing
    on_gui = [(what, path) for what, path, main in reads if main]
    assert on_gui == []
    assert ("set_current", False) in recording and ("weights", False) in recording  # the hooks saw the switch
    assert [call for call in recording if call[1]] == []  # no weights read, no registry switch, on the GUI thread


def test_a_newer_case_request_wins_over_a_read_still_running(docked_widget, qtbot, xray_folder: Path, recording):
    """Previous then a list click before the first read is back: only the clicked case is ever shown."""
    widget = docked_widget
    review, panel = widget.review, widget.worklist_panel
    widget.auto_propose.setChecked(False)
    assert review.open_folder(xray_folder)
    wait_case_open(qtbot, widget, "case0")
    shown: list[str] = []
    widget.state.case_opened.connect(lambda case: shown.append(case.case_id))
    review.read_ahead.cancel()  # nothing read ahead: both requests go to the reader threads
    assert review.open_case(1) and review.open_case(2)  # both return before anything is read
    assert review.case is None and review.navigation.opening.case_id == "case2"
    wait_case_open(qtbot, widget, "case2")
    qtbot.wait(300)  # case1's read, dropped, had every chance to land
    assert shown == ["case2"]
    assert widget.viewer.layers["x-ray"].data.shape == (160, 144)


def test_closing_napari_queues_the_draft_and_never_waits_for_the_writer(make_napari_viewer, tiny_current, qtbot,
                                                                        xray_folder: Path):
    viewer = make_napari_viewer(show=True)  # shown: closing it hides the dock, as for a user
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-lung-unet", "Lung U-Net")
    widget.auto_propose.setChecked(False)
    assert widget.review.open_folder(xray_folder)
    wait_case_open(qtbot, widget, "case0")
    qtbot.waitUntil(widget.isVisible, timeout=5000)
    busy = threading.Event()
    widget.writer.submit(busy.wait)  # the writer is held, as by a slow disk
    try:
        lungs = viewer.layers["lungs"]
        lungs.brush_size = 10
        lungs.paint((40, 40), 2)
        painted = lungs.data.copy()
        viewer.close()  # hides the dock first (hideEvent): it returns with the writer still held
        assert Worklist(xray_folder).load_draft("case0", painted.shape) is None  # queued, not yet written
    finally:
        busy.set()  # (a writer held for ever would also hold the test process at exit, as it should a user's)
    qtbot.waitUntil(lambda: np.array_equal(Worklist(xray_folder).load_draft("case0", painted.shape), painted),
                    timeout=WAIT_MS)


def test_a_read_that_finishes_after_napari_closed_is_dropped(docked_widget, qtbot, xray_folder: Path, caplog):
    """Closing napari while a case is being read: the read is not shown in the closed viewer (napari
    aborted adding a layer to it)."""
    widget = docked_widget
    review, viewer = widget.review, widget.viewer
    widget.auto_propose.setChecked(False)
    assert review.open_folder(xray_folder)
    wait_case_open(qtbot, widget, "case0")
    caplog.set_level("INFO", logger="napari_lung_unet.widget")
    review.read_ahead.cancel()  # case1 is read from now on
    review.open_case(1)
    viewer.close()
    qtbot.waitUntil(lambda: "after napari's window closed" in caplog.text, timeout=WAIT_MS)
    assert len(viewer.layers) == 0 and review.case is None
