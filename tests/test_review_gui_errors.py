"""Bad input in the review GUI: a clear napari notification, no crash, nothing on disk damaged."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from napari.utils.notifications import NotificationSeverity

from napari_lung_unet.store.corrections import CorrectionsStore
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.settings import corrections_dir
from napari_lung_unet.widget import LungUNetWidget

from case_open import wait_settled

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

WAIT_MS = 120_000




def errors(notes) -> list[str]:
    return [m for s, m in notes if s == str(NotificationSeverity.ERROR)]


@pytest.fixture
def widget(docked_widget: LungUNetWidget) -> LungUNetWidget:
    return docked_widget  # the dock on the CPU, the tiny model current (conftest.py)


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    root = tmp_path / "mixed"
    root.mkdir()
    grey = make_phantom((96, 96), seed=1, dtype=np.uint8)[0]
    (root / "a_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    tifffile.imwrite(root / "b_stack.tif", np.stack([grey] * 5), photometric="minisblack")
    iio.imwrite(root / "c_rgb.png", np.stack([grey] * 3, axis=-1))
    iio.imwrite(root / "d_good.png", grey)
    return root


def test_unreadable_cases_are_flagged_and_skipped_over(widget, qtbot, notes, bad_folder: Path):
    review = widget.review
    widget.review.auto_propose = False
    assert review.open_folder(bad_folder)  # opens case 0: the corrupt file
    wait_settled(qtbot, widget)  # listed and read off the GUI thread
    assert review.case is None
    assert any("a_corrupt" in m and "not a readable image" in m for m in errors(notes))
    assert "✗" in widget.worklist_panel.list.item(0).text()
    assert not review.accept()  # nothing to accept while no readable case is open
    assert CorrectionsStore(corrections_dir()).case_ids() == []

    notes.clear()
    review.step(1)  # the 3-D TIFF stack
    wait_settled(qtbot, widget)
    assert review.case is None
    assert any("b_stack" in m and "3-D" in m for m in errors(notes))

    notes.clear()
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        review.auto_propose = True
        review.step(1)  # RGB: converted to grey with a notice, and proposed
    assert review.case.case_id == "c_rgb"
    assert any("converted to grey" in m for _, m in notes)
    assert widget.viewer.layers["lungs"].data.shape == (96, 96)
    # the state file survived every failure and records the errors
    assert [c.error is not None for c in review.worklist.cases] == [True, True, False, False]


def test_labels_of_wrong_shape_are_not_accepted(widget, qtbot, notes, bad_folder: Path):
    (bad_folder / "a_corrupt.png").unlink()
    (bad_folder / "b_stack.tif").unlink()
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.review.open_folder(bad_folder)
    widget.viewer.layers["lungs"].data = np.zeros((50, 60), np.uint8)  # as if replaced by hand

    assert not widget.review.accept()
    assert any("50×60" in m and "96×96" in m and "nothing was saved" in m for m in errors(notes))
    assert not corrections_dir().exists() or CorrectionsStore(corrections_dir()).case_ids() == []
    assert widget.review.case.status != "accepted"


def test_finetune_without_corrections_explains(widget, notes):
    assert not widget.finetune.start()
    assert widget.finetune.process is None
    assert any("accept at least one case" in m for m in errors(notes))


def test_second_finetune_click_warns_and_cancel_leaves_the_model(widget, qtbot, notes, bad_folder: Path):
    for name in ("a_corrupt.png", "b_stack.tif"):
        (bad_folder / name).unlink()
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.review.open_folder(bad_folder)
    with qtbot.waitSignals([widget.proposal_finished, widget.review.case_accepted], timeout=WAIT_MS):
        assert widget.review.accept()
    versions = {c.version for c in Registry().cards()}
    widget.finetune.steps = 100_000  # long enough that Cancel certainly interrupts it

    assert widget.finetune.start()
    notes.clear()
    widget.finetune.button.setEnabled(True)  # a fast double click can beat the disabling
    widget.finetune.button.click()
    assert any("already running" in m for _, m in notes)
    qtbot.waitUntil(lambda: "step" in widget.finetune.status.text(), timeout=WAIT_MS)
    with qtbot.waitSignal(widget.finetune.finished, timeout=WAIT_MS) as done:
        widget.finetune.cancel_button.click()
    assert done.args[0] is None
    assert "cancelled" in widget.finetune.status.text()
    assert {c.version for c in Registry().cards()} == versions
    assert Registry().current_version() == "tiny"
    assert widget.finetune.button.isEnabled() and not widget.finetune.running


def test_rollback_from_the_history_panel(widget, qtbot, notes, tiny_model_dir: Path):
    history = widget.history
    assert "tiny" in history.versions()
    bundled = Registry().bundled_version
    history.select(bundled)
    with qtbot.waitSignal(history.current_changed, timeout=WAIT_MS):  # weights load on a worker, with a wait shown
        assert history.make_selected_current()
        assert history.wait_label.isVisibleTo(history) and not history.rollback.isEnabled()
    assert not history.wait_label.isVisibleTo(history) and history.rollback.isEnabled()
    assert Registry().current_version() == bundled
    assert history.table.item(history.versions().index(bundled), 0).text() == "●"
    assert "(current)" in widget.model_combo.itemText(widget.model_combo.findData(bundled))
