"""Refine with a click in a real napari dock (issue 19, section 2): the bundled model, real CC BY
X-rays shipped with the package (napari_lung_unet/reference), clicks on napari's real canvas.

A positive click inside lung the proposal missed grows the mask there, a right click on marked
lung that is not lung shrinks it; hand-painted pixels keep their labels; undo restores the mask
from before the refine; the readouts follow. Run under a display:
``xvfb-run -a pytest tests/test_refine_dock.py``.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt
from qtpy.QtTest import QTest
from scipy import ndimage

from heartbeat import Heartbeat

from napari_lung_unet.images.labels import LEFT_LUNG
from napari_lung_unet.images.read import read_xray

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

WAIT_MS = 120_000
# The worst heartbeat gap from a click to its refined mask on screen. The goal is 100 ms; measured
# 50-55 ms on an idle 2-core EPYC (2026-12-01) and 111-188 ms with a training job on the other core, nearly
# all of it napari's and Qt's repainting (our click and write take 8 and 2 ms on the GUI thread; the refine
# runs on a worker). The bound is the GUI tests' own, so that a loaded CI machine does not fail it.
MAX_GAP_S = 0.250
REFERENCE = Path(__file__).resolve().parents[1] / "napari_lung_unet" / "reference"
CASE = "00870a9c"  # CC BY 3.0 (attribution.csv); its lung-fields mask is the bundled model's parent's own


@pytest.fixture
def widget(make_napari_viewer):  # noqa: ANN001, ANN201 - the bundled model is current in an empty home
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1366, 768)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-lung-unet", "Lung U-Net")
    widget.device_combo.setCurrentText("cpu")
    return widget


def xray_and_right_lung() -> tuple[np.ndarray, np.ndarray]:
    pixels = read_xray(REFERENCE / "images" / f"{CASE}.png").pixels.astype(np.float32)
    lungs = iio.imread(REFERENCE / "lung-fields" / f"{CASE}.png") > 0
    right = lungs & (np.arange(lungs.shape[1])[None, :] < lungs.shape[1] // 2)  # the patient's right: image left
    return pixels, right


def disc(shape: tuple[int, int], centre: tuple[int, int], radius: int) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2


def deepest(region: np.ndarray) -> tuple[int, int]:
    depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(r), int(c)


def propose(qtbot, widget, pixels: np.ndarray, name: str):  # noqa: ANN201
    widget.viewer.add_image(pixels, name=name, colormap="gray")
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.propose()
    return widget.viewer.layers[f"lungs ({name})"]


def canvas_click(qtbot, widget, row: int, col: int, right: bool = False) -> None:
    """A click on napari's canvas at the image pixel (row, col), through Qt, vispy and napari."""
    viewer = widget.viewer
    canvas = viewer.window._qt_viewer.canvas.native
    camera = viewer.camera
    centre = np.asarray(camera.center[-2:])
    y, x = (np.array([row, col], float) - centre) * camera.zoom + np.array([canvas.height(), canvas.width()]) / 2
    button = Qt.MouseButton.RightButton if right else Qt.MouseButton.LeftButton
    with Heartbeat() as beat, qtbot.waitSignal(widget.review.refine.refined, timeout=WAIT_MS) as done:
        QTest.mouseClick(canvas, button, Qt.KeyboardModifier.NoModifier, QPoint(int(round(x)), int(round(y))))
    assert done.args[0] is not None, "the refine failed"
    print(f"refine click: worst heartbeat gap {beat.worst_gap * 1000:.0f} ms")
    assert beat.worst_gap < MAX_GAP_S, f"the GUI froze for {beat.worst_gap * 1000:.0f} ms during a refine"


def marks_ready(qtbot, widget) -> None:  # noqa: ANN001
    """Until Refine mode's click-marks layer is made and drawn once (a person moves to the canvas meanwhile):
    the heartbeat of a click then measures the click, not the mode switch just before it."""
    marks = widget.review.refine.marks
    qtbot.waitUntil(lambda: (layer := marks.layer_of(widget.state.image_id)) is not None and layer.opacity == 1.0,
                    timeout=WAIT_MS)


def counts(labels: np.ndarray) -> np.ndarray:
    return np.bincount(np.asarray(labels).ravel(), minlength=3)[:3]


def test_a_click_grows_a_missed_region_and_undo_takes_it_back(widget, qtbot):
    pixels, right = xray_and_right_lung()
    rows, cols = np.nonzero(right)
    opacity = disc(pixels.shape, (int(np.percentile(rows, 70)), int(np.median(cols))), pixels.shape[0] // 12)
    pixels[opacity] = np.percentile(pixels, 97)  # a dense opacity in the right lung: the model leaves it out
    lungs = propose(qtbot, widget, pixels, "opacity")
    missed = opacity & (lungs.data == 0)
    assert missed.sum() > 0.8 * opacity.sum(), "the model did not miss the opacity: nothing to refine"

    widget.controls.refine.click()  # Refine mode on (Shift-F)
    assert widget.review.refine.on and lungs.mode == "pan_zoom"
    before, text_before = lungs.data.copy(), widget.readouts.text()
    marks_ready(qtbot, widget)
    canvas_click(qtbot, widget, *deepest(missed))

    assert (lungs.data[missed] > 0).mean() > 0.6, "the click did not grow the mask in the missed region"
    assert (lungs.data[~opacity & (before == 0)] > 0).sum() < 0.25 * opacity.sum()  # around it, not everywhere
    np.testing.assert_array_equal(widget.state.stats.areas, counts(lungs.data))  # readouts in step
    assert widget.readouts.text() != text_before

    marks = widget.review.refine.marks.layer_of(widget.state.image_id)  # the click on screen, green: a grow
    assert marks is not None and len(marks.data) == 1 and tuple(np.round(marks.face_color[0][:3], 2)) == (0.0, 0.88, 0.0)
    assert widget.viewer.layers.selection.active.unique_id == lungs.unique_id  # the mask keeps the clicks

    lungs.undo()
    np.testing.assert_array_equal(lungs.data, before)  # the mask from before the refine
    np.testing.assert_array_equal(widget.state.stats.areas, counts(before))
    assert widget.readouts.text() == text_before
    assert len(marks.data) == 0  # undo takes the click's point away with its refine
    lungs.redo()
    assert len(marks.data) == 1


def test_a_right_click_shrinks_an_extra_region(widget, qtbot):
    pixels, right = xray_and_right_lung()
    rows, cols = np.nonzero(right)
    # a region one click can redo: narrower than the refine's crop (15 % of the model's side; nn/refine.py)
    below = disc(pixels.shape, (int(rows.max() + pixels.shape[0] // 30), int(np.median(cols))), pixels.shape[0] // 14)
    pixels[below] = np.median(pixels[right])  # lung-dark tissue under the dome: the model marks it as lung
    lungs = propose(qtbot, widget, pixels, "extra")
    extra = below & ~right & (lungs.data > 0)
    assert extra.sum() > 300, "the model marked nothing extra: nothing to refine"
    upper = right & (np.arange(right.shape[0])[:, None] < np.percentile(rows, 40))  # far from the click
    # a hand stroke inside the extra region, in the other lung's label: the refine must leave it as painted
    r, c = deepest(extra)
    lungs.brush_size = 8
    lungs.paint((r + 10, c), LEFT_LUNG)
    painted = extra & (lungs.data == LEFT_LUNG)
    assert painted.sum() > 20
    before = lungs.data.copy()

    widget.review.refine.toggle()  # Shift-F
    marks_ready(qtbot, widget)
    canvas_click(qtbot, widget, r, c, right=True)

    assert (lungs.data[extra & ~painted] == 0).mean() > 0.6, "the right click did not shrink the extra region"
    assert np.all(lungs.data[painted] == LEFT_LUNG)  # the hand's pixels, exactly
    np.testing.assert_array_equal(lungs.data[upper], before[upper])
    np.testing.assert_array_equal(widget.state.stats.areas, counts(lungs.data))


def test_another_tool_ends_refine_mode(widget, qtbot):
    pixels, _right = xray_and_right_lung()
    lungs = propose(qtbot, widget, pixels, "plain")
    widget.review.refine.toggle()
    assert widget.controls.refine.isChecked()
    widget.controls.set_label(LEFT_LUNG)  # the lung buttons (and the brush, the eraser) end it
    assert not widget.review.refine.on and not widget.controls.refine.isChecked() and lungs.mode == "paint"
