"""A clinician's screen (issue 20): one patient on screen, each case fitted, the actions always in
reach, keys from any focus, words that match the state, and the PACS choice next to Accept.

Real napari viewers, shown and resized to a 1366×768 laptop and a 1920×1080 desktop, with the
tiny model on the CPU. Run under a display: ``xvfb-run -a pytest tests/test_review_screen.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from napari.layers import Image
from qtpy.QtCore import QPoint, QRect, Qt

from napari_lung_unet.dicom.pacs_worklist import PACS_FILE
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.settings import corrections_dir
from napari_lung_unet.store.atomic import atomic_write_json
from napari_lung_unet.store.corrections import CorrectionsStore
from napari_lung_unet.store.worklist import PROPOSED
from napari_lung_unet.widget import strings

from case_open import wait_case_open

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

WAIT_MS = 120_000
SCREENS = [(1366, 768), (1920, 1080)]


@pytest.fixture(params=SCREENS, ids=lambda size: f"{size[0]}x{size[1]}")
def screen(request, make_napari_viewer, tiny_current):  # noqa: ANN001, ANN201
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*request.param)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-lung-unet", "Lung U-Net")
    widget.device_combo.setCurrentText("cpu")
    return viewer, widget


def propose(qtbot, widget) -> object:
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS) as done:
        widget.propose()
    return done.args[0]


def visible_images(viewer) -> list[str]:
    return [layer.name for layer in viewer.layers if isinstance(layer, Image) and layer.visible]


def fill(viewer, image) -> float:
    """How much of the canvas the image fills in its tighter direction (1.0: edge to edge)."""
    canvas = viewer.window._qt_viewer.canvas.native
    extent = np.asarray(image.data.shape[:2]) * np.asarray(image.scale[-2:]) * viewer.camera.zoom
    return float(max(extent[0] / canvas.height(), extent[1] / canvas.width()))


def on_screen(widget, button) -> bool:
    """The button is shown, within the window, and not scrolled out of its dock's view."""
    window = widget.window()
    rect = QRect(button.mapTo(window, QPoint(0, 0)), button.size())
    dock = QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())
    return button.isVisible() and not button.visibleRegion().isEmpty() and window.rect().contains(rect) and dock.contains(rect)


def test_one_patient_fitted_and_actions_in_reach(screen, qtbot, tmp_path: Path):
    viewer, widget = screen
    other = viewer.add_image(make_phantom((700, 700), seed=1)[0], name="other patient")
    propose(qtbot, widget)  # the other patient has their own mask too
    folder = tmp_path / "cases"
    folder.mkdir()
    iio.imwrite(folder / "a_large.png", make_phantom((900, 860), seed=2, dtype=np.uint8)[0])
    iio.imwrite(folder / "b_small.png", make_phantom((512, 512), seed=3, dtype=np.uint8)[0])
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        assert widget.review.open_folder(folder)
    buttons = widget.accept_button, widget.worklist_panel.next, widget.worklist_panel.previous, widget.controls.left
    for case_id in ("a_large", "b_small"):
        qtbot.wait(200)
        assert widget.review.case.case_id == case_id
        xray = viewer.layers["x-ray"]
        assert visible_images(viewer) == ["x-ray"]  # exactly one X-ray
        assert not viewer.layers["lungs (other patient)"].visible and viewer.layers["lungs"].visible
        assert 0.80 <= fill(viewer, xray) <= 1.05, fill(viewer, xray)
        for tab in (0, 1):
            widget.tabs.setCurrentIndex(tab)
            qtbot.wait(50)
            assert all(on_screen(widget, button) for button in buttons), [b.text() for b in buttons if not on_screen(widget, b)]
        widget.tabs.setCurrentIndex(0)
        if case_id == "a_large":
            with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
                widget.worklist_panel.next.click()

    # a view the clinician chose for a case comes back with it; other cases are fitted
    viewer.camera.zoom *= 2.5
    mine = viewer.camera.zoom
    widget.worklist_panel.previous.click()
    wait_case_open(qtbot, widget, "a_large")
    assert 0.80 <= fill(viewer, viewer.layers["x-ray"]) <= 1.05
    widget.worklist_panel.next.click()
    wait_case_open(qtbot, widget, "b_small")
    assert viewer.camera.zoom == pytest.approx(mine)

    # leaving the worklist for the other image brings exactly what was hidden back
    widget.image_combo.setCurrentIndex(widget.image_combo.findText("other patient"))
    assert other.visible and viewer.layers["lungs (other patient)"].visible
    assert widget.review.step(-1)  # back to a case: one patient again
    wait_case_open(qtbot, widget, "a_large")
    assert visible_images(viewer) == ["x-ray"]


def test_keys_from_any_focus_but_a_text_field(screen, qtbot, xray_folder: Path):
    viewer, widget = screen
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        assert widget.review.open_folder(xray_folder)
    window = widget.window()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    lungs = viewer.layers["lungs"]

    widget.controls.brush.setFocus()
    qtbot.keyClick(widget.controls.brush, Qt.Key.Key_L, Qt.KeyboardModifier.ShiftModifier)
    assert lungs.selected_label == 2 and widget.controls.left.isChecked()
    size = lungs.brush_size
    qtbot.keyClick(widget.controls.brush, Qt.Key.Key_BracketRight)
    assert lungs.brush_size > size and widget.controls.brush.value() == lungs.brush_size
    qtbot.keyClick(widget.controls.brush, Qt.Key.Key_E, Qt.KeyboardModifier.ShiftModifier)
    assert lungs.mode == "erase"
    qtbot.keyClick(widget.controls.brush, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    assert lungs.selected_label == 1 and lungs.mode == "paint"

    widget.worklist_panel.list.setFocus()
    widget.auto_propose.setChecked(False)
    qtbot.keyClick(widget.worklist_panel.list, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    wait_case_open(qtbot, widget, "case1")
    qtbot.keyClick(widget.worklist_panel.list, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)
    wait_case_open(qtbot, widget, "case0")

    # typing a model path: the letters are text, not commands
    line = widget.model_combo.lineEdit()
    line.setFocus()
    line.clear()
    qtbot.keyClicks(line, "N")
    qtbot.keyClick(line, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    assert widget.review.case.case_id == "case0" and line.text().lower() == "nn"  # typed, not a Next
    assert "Shift-A" in widget.actions.toolTip() and "Shift-E" in widget.actions.toolTip()
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert all(f"`{key.replace('+', '-')}`" in readme for key in ("Shift+R", "Shift+L", "Shift+E", "]", "["))


def test_shift_a_stores_the_case_the_dock_shows_and_says_so(screen, qtbot, xray_folder: Path, notes):
    viewer, widget = screen
    viewer.add_image(make_phantom((120, 100), seed=9)[0], name="other patient")
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        assert widget.review.open_folder(xray_folder)
    viewer.layers.selection.active = viewer.layers["other patient"]  # the other image picked in the layer list
    assert widget.image_combo.currentText() == "x-ray"  # the dock still shows the case
    window = widget.window()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    with qtbot.waitSignal(widget.review.stored, timeout=WAIT_MS) as stored:
        qtbot.keyClick(widget.worklist_panel.list, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    # one notification per accept, once it is stored, naming the case the dock showed
    said = [message for _severity, message in notes if "case0" in message]
    assert len(said) == 1 and strings.ACCEPTED_INFO.split("{")[0] in said[0]
    assert widget.status_label.text() != strings.STATUS_IDLE
    record = CorrectionsStore(corrections_dir()).record(stored.args[0])
    assert record.source_path == str((xray_folder / "case0.png").resolve())


def test_words_match_the_state_and_no_name_widens_the_dock(screen, qtbot, tmp_path: Path, tiny_model_dir: Path):
    viewer, widget = screen
    folder = tmp_path / "cases"
    folder.mkdir()
    long_id = "patient-" + "x" * 70
    iio.imwrite(folder / f"{long_id}.png", make_phantom((160, 144), seed=4, dtype=np.uint8)[0])
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        assert widget.review.open_folder(folder)
    widget.auto_propose.setChecked(False)
    assert widget.review.open_case(0)  # reopened: the mask is the cached proposal
    wait_case_open(qtbot, widget, long_id)
    assert widget.status_label.text() == strings.STATUS_HAS_MASK  # not "Pick an image and press Propose lungs"

    # a re-proposal that changes nothing is no edit
    propose(qtbot, widget)
    assert widget.review.case.status == PROPOSED and "0.0 %" in widget.readouts.text()

    # a long case id and a long model path wrap or are cut inside the dock, never widen it
    widget.model_combo.setEditText(str(tiny_model_dir) + "/" + "y" * 60)
    propose(qtbot, widget)  # fails in one line naming the path
    qtbot.wait(100)
    content = widget.scroll.widget()
    assert content.minimumSizeHint().width() <= widget.scroll.viewport().width()
    assert widget.actions.minimumSizeHint().width() <= widget.width()
    assert long_id in widget.worklist_panel.case_info.text()


def test_pacs_store_back_is_a_per_worklist_choice_shown_next_to_accept(screen, qtbot, tmp_path: Path, xray_folder: Path):
    _viewer, widget = screen
    widget.auto_propose.setChecked(False)
    pacs = tmp_path / "from-pacs"
    pacs.mkdir()
    (pacs / "1.2.3.png").write_bytes((xray_folder / "case0.png").read_bytes())
    atomic_write_json(pacs / PACS_FILE, {"root": "http://127.0.0.1:9/dicom-web", "studies": ["1.2"], "store_seg": False})
    assert widget.review.open_folder(pacs)
    wait_case_open(qtbot, widget)
    choice = widget.actions.pacs_seg
    assert choice.isVisible() and not choice.isChecked() and on_screen(widget, choice)
    choice.setChecked(True)
    widget.review.save_draft_now()  # waits for the writer
    assert json.loads((pacs / PACS_FILE).read_text())["store_seg"] is True
    assert widget.review.open_folder(xray_folder)  # an ordinary folder has no such choice
    wait_case_open(qtbot, widget)
    assert not choice.isVisible()
    assert widget.review.open_folder(pacs)  # and the PACS worklist remembers its own
    wait_case_open(qtbot, widget)
    assert choice.isVisible() and choice.isChecked()
