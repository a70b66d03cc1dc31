"""The worklist's lung-convention control in a real napari dock (issue 17, item 3).

The combo box shows the open worklist's convention and writes the clinician's choice into the
worklist's state; choosing another convention proposes the open case again, in it. Real viewers,
real tiny U-Nets on the CPU. Run under a display: ``xvfb-run -a pytest tests/test_convention_dock.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import QPoint, QRect, Qt

from napari_lung_unet.images.read import read_xray
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.store.worklist import Worklist

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

WAIT_MS = 120_000
PLUGIN, WIDGET = "napari-lung-unet", "Lung U-Net"


def dock(viewer):  # noqa: ANN001, ANN201
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget.device_combo.setCurrentText("cpu")
    return widget


def open_and_wait(qtbot, widget, folder: Path) -> None:
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        assert widget.review.open_folder(folder)


def choose(qtbot, widget, name: str) -> None:
    """The clinician picks ``name`` in the box; the open case is proposed again."""
    combo = widget.convention.combo
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        combo.setCurrentIndex(combo.findData(name))


def expected(case_path: Path, convention: str) -> np.ndarray:
    return Predictor.from_registry(device="cpu", convention=convention).predict(read_xray(case_path)).labels


def test_whole_lung_reproposes_the_case_and_each_worklist_keeps_its_own(
    make_napari_viewer, two_convention_current, qtbot, xray_folder: Path, tmp_path: Path,
):
    widget = dock(make_napari_viewer())
    combo = widget.convention.combo
    assert not combo.isEnabled()  # no worklist: nothing to set it on
    open_and_wait(qtbot, widget, xray_folder)
    lungs = widget.viewer.layers["lungs"]
    case = widget.review.case
    assert combo.isEnabled() and combo.currentData() == "lung-fields"  # never chosen: the model's default
    assert all(combo.model().item(i).isEnabled() for i in range(combo.count()))  # the model knows both
    assert lungs.metadata["convention"] == "lung-fields"
    fields, whole = expected(case.path, "lung-fields"), expected(case.path, "whole-lung")
    assert (whole > 0).sum() > (fields > 0).sum()  # the two conventions draw different masks here
    np.testing.assert_array_equal(lungs.data, fields)

    choose(qtbot, widget, "whole-lung")
    assert widget.state.convention == "whole-lung"
    assert lungs.metadata["convention"] == "whole-lung"
    np.testing.assert_array_equal(lungs.data, whole)  # the open case, proposed again in whole-lung
    widget.review.save_draft_now()  # waits for the writer
    assert Worklist(xray_folder).settings == {"convention": "whole-lung"}

    # a second worklist keeps its own: lung fields until chosen otherwise
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.png").write_bytes((xray_folder / "case1.png").read_bytes())
    open_and_wait(qtbot, widget, other)
    assert combo.currentData() == "lung-fields" and widget.state.convention is None
    assert lungs.metadata["convention"] == "lung-fields"
    np.testing.assert_array_equal(lungs.data, expected(other / "a.png", "lung-fields"))

    # closing it and reopening the first: whole-lung again, shown and used for its next case
    assert widget.review.open_folder(xray_folder)
    assert combo.currentData() == "whole-lung"
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.worklist_panel.next.click()
    assert lungs.metadata["convention"] == "whole-lung"
    np.testing.assert_array_equal(lungs.data, expected(widget.review.case.path, "whole-lung"))

    # and a fresh napari remembers it too, from the worklist's state file
    again = dock(make_napari_viewer())
    assert again.review.open_folder(xray_folder)
    assert again.convention.combo.currentData() == "whole-lung"


def test_a_convention_the_model_does_not_know_is_greyed_out_with_the_reason(docked_widget, qtbot, xray_folder: Path):
    widget = docked_widget  # the tiny model knows lung fields only
    combo = widget.convention.combo
    widget.auto_propose.setChecked(False)
    assert widget.review.open_folder(xray_folder)
    whole = combo.findData("whole-lung")
    assert combo.model().item(combo.findData("lung-fields")).isEnabled()
    assert not combo.model().item(whole).isEnabled()
    why = combo.itemData(whole, Qt.ItemDataRole.ToolTipRole)
    assert "tiny knows only lung-fields" in why and "whole-lung" in why
    # a worklist set to whole-lung elsewhere still shows what it says, greyed out with the reason
    widget.state.set_convention("whole-lung")
    assert combo.currentData() == "whole-lung" and "knows only lung-fields" in combo.toolTip()


def test_the_control_fits_a_1366x768_laptop(make_napari_viewer, two_convention_current, qtbot, xray_folder: Path):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1366, 768)
    widget = dock(viewer)
    widget.auto_propose.setChecked(False)
    assert widget.review.open_folder(xray_folder)
    qtbot.wait(200)
    window = widget.window()
    combo = widget.convention.combo
    assert window.width() == 1366
    assert widget.scroll.widget().minimumSizeHint().width() <= widget.scroll.viewport().width()  # the dock doesn't widen
    left = combo.mapTo(widget, QPoint(0, 0)).x()
    assert combo.isVisible() and 0 <= left and left + combo.width() <= widget.width()  # whole, inside the dock
    for button in (widget.accept_button, widget.worklist_panel.next, widget.worklist_panel.previous):
        top_left = button.mapTo(window, QPoint(0, 0))
        assert button.isVisible() and window.rect().contains(QRect(top_left, button.size()))
