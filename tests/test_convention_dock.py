"""The worklist's lung-convention control in a real napari dock (issue 17, item 3).

The combo box shows the open worklist's convention and writes the clinician's choice into the
worklist's state; choosing another convention proposes the open case again, in it. Real viewers,
real tiny U-Nets on the CPU. Run under a display: ``xvfb-run -a pytest tests/test_convention_dock.py``.
"""

from __future__ import annotations

from questions import answer

import json
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import QPoint, QRect, Qt

import imageio.v3 as iio
import torch

from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.images.read import read_xray
from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.nn.model import UNet, UNetConfig
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.settings import corrections_dir
from napari_lung_unet.store.corrections import CorrectionsStore
from napari_lung_unet.store.worklist import EDITED, PROPOSED, Worklist

from case_open import wait_case_open

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
    wait_case_open(qtbot, widget)
    assert combo.currentData() == "whole-lung"
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.worklist_panel.next.click()
    assert lungs.metadata["convention"] == "whole-lung"
    np.testing.assert_array_equal(lungs.data, expected(widget.review.case.path, "whole-lung"))

    # and a fresh napari remembers it too, from the worklist's state file
    again = dock(make_napari_viewer())
    assert again.review.open_folder(xray_folder)
    wait_case_open(qtbot, again)
    assert again.convention.combo.currentData() == "whole-lung"


def test_a_convention_the_model_does_not_know_is_greyed_out_with_the_reason(docked_widget, qtbot, xray_folder: Path):
    widget = docked_widget  # the tiny model knows lung fields only
    combo = widget.convention.combo
    widget.auto_propose.setChecked(False)
    assert widget.review.open_folder(xray_folder)
    wait_case_open(qtbot, widget, "case0")
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
    wait_case_open(qtbot, widget, "case0")
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


def paint_an_edit(layer, at: tuple[int, int] = (30, 30)) -> None:  # noqa: ANN001
    """A brush stroke that surely changes the mask: a label other than the one under the brush."""
    layer.brush_size = 10
    layer.paint(at, 1 if layer.data[at] != 1 else 2)


def stored_conventions() -> dict[str, str]:
    store = CorrectionsStore(corrections_dir())
    return {store.record(c).source_path: store.record(c).convention for c in store.case_ids()}


def test_a_case_cached_in_the_other_convention_is_proposed_again_but_edits_are_kept(
    make_napari_viewer, two_convention_current, qtbot, xray_folder: Path,
):
    widget = dock(make_napari_viewer())
    review, panel = widget.review, widget.worklist_panel
    open_and_wait(qtbot, widget, xray_folder)  # case0, in lung fields (none chosen: the model's own)
    lungs = widget.viewer.layers["lungs"]
    paths = [case.path for case in review.worklist.cases]
    fields = [expected(path, "lung-fields") for path in paths]
    whole = [expected(path, "whole-lung") for path in paths]
    np.testing.assert_array_equal(lungs.data, fields[0])
    paint_an_edit(lungs)
    review.reset_to_proposal()  # painted back: a draft equal to its proposal, no edit
    answer(widget, act=True)  # after a yes: Reset replaces edits
    assert review.case.status == PROPOSED
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        panel.next.click()  # case1, in lung fields
    paint_an_edit(lungs)
    edits = lungs.data.copy()
    assert review.case.status == EDITED
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        panel.next.click()  # case2
    choose(qtbot, widget, "whole-lung")
    np.testing.assert_array_equal(lungs.data, whole[2])

    # case1: the clinician's lung-fields edits are kept, not proposed over; the status line says so
    panel.previous.click()
    wait_case_open(qtbot, widget, "case1")
    assert not widget.state.running
    np.testing.assert_array_equal(lungs.data, edits)
    line = widget.status_label.text()
    assert "drawn on a lung-fields proposal" in line and "this worklist is whole-lung" in line
    assert review.case.status == EDITED

    # case0: untouched, so proposed again in whole-lung; the lung-fields mask is never shown meanwhile
    shown: list[bool] = []  # whether a mask was on screen as case0 opened
    record = lambda _case: shown.append(bool(lungs.data.any()))  # noqa: E731
    widget.state.case_opened.connect(record)
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        panel.previous.click()
    widget.state.case_opened.disconnect(record)
    assert shown == [False]
    np.testing.assert_array_equal(lungs.data, whole[0])
    assert lungs.metadata["convention"] == "whole-lung"
    review.save_draft_now()
    saved = Worklist(xray_folder)
    assert [case.convention for case in saved.cases] == ["whole-lung", "lung-fields", "whole-lung"]
    assert saved.load_draft("case0", whole[0].shape) is None  # its lung-fields draft went with its proposal
    np.testing.assert_array_equal(saved.load_proposal("case0", whole[0].shape), whole[0])
    panel.next.click()
    panel.previous.click()  # back again (before case1 was even shown): the cached whole-lung proposal, no stale draft, no new run
    wait_case_open(qtbot, widget, "case0")
    assert not widget.state.running
    np.testing.assert_array_equal(lungs.data, whole[0])

    # each record says the convention its mask was drawn in: the kept lung-fields edits of case1 are
    # never relabelled whole-lung by the worklist's later choice (issue 33)
    for _case in range(2):
        wait_case_open(qtbot, widget)
        with qtbot.waitSignal(review.case_accepted, timeout=WAIT_MS):
            widget.accept_button.click()
    assert stored_conventions() == {str(paths[0].resolve()): "whole-lung", str(paths[1].resolve()): "lung-fields"}


def test_an_old_worklist_cache_counts_as_lung_fields(make_napari_viewer, two_convention_current, qtbot, xray_folder: Path):
    """A folder proposed before proposals recorded their convention, set to whole-lung since."""
    old = Worklist(xray_folder)
    first = old.cases[0].path
    old.save_proposal(old.cases[0], expected(first, "lung-fields"), "tiny2", 0.9)
    data = json.loads(old.state_file.read_text())
    for entry in data["cases"].values():
        entry["extra"] = {}  # as older versions wrote it
    data["settings"] = {"convention": "whole-lung"}
    old.state_file.write_text(json.dumps(data))
    widget = dock(make_napari_viewer())
    open_and_wait(qtbot, widget, xray_folder)
    np.testing.assert_array_equal(widget.viewer.layers["lungs"].data, expected(first, "whole-lung"))


def test_a_switch_while_a_proposal_runs_is_proposed_after_it_and_the_last_choice_wins(
    make_napari_viewer, two_convention_current, qtbot, xray_folder: Path,
):
    widget = dock(make_napari_viewer())
    review, state, combo = widget.review, widget.state, widget.convention.combo
    open_and_wait(qtbot, widget, xray_folder)
    lungs = widget.viewer.layers["lungs"]
    fields, whole = expected(review.case.path, "lung-fields"), expected(review.case.path, "whole-lung")
    shown, returned = [], []
    state.labels_shown.connect(lambda layer: shown.append(np.array(layer.data)))
    review.runner.returned.connect(lambda result: returned.append(result.prediction.convention))

    def switches_during_a_run(names: tuple[str, ...]) -> None:
        shown.clear(), returned.clear()
        assert review.propose() is not None and state.running
        for name in names:  # the clinician changes their mind while it runs
            combo.setCurrentIndex(combo.findData(name))
        qtbot.waitUntil(lambda: not state.running and len(returned) >= 1 and lungs.metadata["convention"] == names[-1],
                        timeout=WAIT_MS)
        qtbot.wait(300)
        assert not state.running

    switches_during_a_run(("whole-lung", "lung-fields", "whole-lung"))
    assert returned == ["lung-fields", "whole-lung"]  # the running one, then the last choice
    np.testing.assert_array_equal(lungs.data, whole)
    assert shown and all(np.array_equal(mask, whole) for mask in shown)  # the lung-fields run was never shown
    review.save_draft_now()
    assert Worklist(xray_folder).cases[0].convention == "whole-lung"

    switches_during_a_run(("lung-fields", "whole-lung"))  # back where the running one is: nothing redone
    assert returned == ["whole-lung"]
    np.testing.assert_array_equal(lungs.data, whole)
    assert not np.array_equal(whole, fields)


@pytest.fixture
def whole_lung_only_current(isolated_home: Path) -> str:
    """A tiny real U-Net that knows only whole-lung, registered and current."""
    torch.manual_seed(0)
    config = UNetConfig(base_channels=4, depth=2, out_channels=1)
    card = ModelCard(version="whole-only", architecture=config, input_size=64, status="trained", conventions=["whole-lung"])
    Registry().add(UNet(config), card)
    Registry().set_current("whole-only")
    return "whole-only"


def test_with_no_convention_chosen_the_model_draws_its_own(
    make_napari_viewer, whole_lung_only_current, qtbot, xray_folder: Path, tmp_path: Path,
):
    widget = dock(make_napari_viewer())
    combo = widget.convention.combo
    single = tmp_path / "single.png"  # an image opened on its own
    iio.imwrite(single, make_phantom((128, 120), seed=9, dtype=np.uint8)[0])
    widget.viewer.open(str(single))
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.propose_button.click()
    assert widget.viewer.layers["lungs (single)"].metadata["convention"] == "whole-lung"
    with qtbot.waitSignal(widget.state.stored, timeout=WAIT_MS):
        widget.review.accept()

    open_and_wait(qtbot, widget, xray_folder)
    assert widget.state.convention is None
    assert combo.currentData() == "whole-lung"  # shown as what the model draws
    assert not combo.model().item(combo.findData("lung-fields")).isEnabled()
    lungs = widget.viewer.layers["lungs"]
    case = widget.review.case
    assert lungs.metadata["convention"] == "whole-lung"
    np.testing.assert_array_equal(lungs.data, Predictor.from_registry(device="cpu").predict(read_xray(case.path)).labels)
    with qtbot.waitSignals([widget.review.case_accepted, widget.proposal_finished], timeout=WAIT_MS):
        widget.accept_button.click()  # the next case opens and is proposed before the test ends (not in its teardown)
    assert stored_conventions() == {str(single.resolve()): "whole-lung", str(case.path.resolve()): "whole-lung"}
