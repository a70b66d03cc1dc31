"""The dock's "Show where unsure" overlay (issue 29 item 3): a heat map of where the model doubted the
reviewed proposal, lined up with the X-ray, following the open case, kept with a worklist's cached
proposal, and gone when unticked. Real X-rays (the shipped CC BY reference set), the bundled model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from case_open import wait_case_open
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.images.read import read_xray
from napari_lung_unet.widget.quality_hint import HINT_SUFFIX, quality_hint

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

WAIT_MS = 120_000
REFERENCE = Path(__file__).resolve().parents[1] / "napari_lung_unet" / "reference" / "images"
CASES = ("3fd337c1", "d009d61f")  # CC BY (attribution.csv), in file order; the first is one the bundled model doubts


def _edges(layer) -> np.ndarray:  # noqa: ANN001 - the outer edges of a layer's corner pixels, in world units
    half = np.asarray(layer.scale) / 2
    return np.stack([layer.extent.world[0] - half, layer.extent.world[1] + half])


def _overlays(viewer) -> list:  # noqa: ANN001
    return [layer for layer in viewer.layers if layer.name.endswith(HINT_SUFFIX)]


def test_the_unsure_overlay_follows_the_case_and_comes_back_with_its_cached_proposal(bundled_dock, qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    widget, viewer = bundled_dock, bundled_dock.viewer
    folder = tmp_path / "ward"
    folder.mkdir()
    for case_id in CASES:  # opened in this order
        shutil.copy(REFERENCE / f"{case_id}.png", folder / f"{case_id}.png")
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.review.open_folder(folder)
    wait_case_open(qtbot, widget, CASES[0])
    assert _overlays(viewer) == []  # off until asked: the review shows the X-ray and its mask only

    image, mask = widget.state.image(), widget.state.labels_layer()
    widget.unsure.toggle.setChecked(True)
    [overlay] = _overlays(viewer)
    assert widget.state.image().unique_id == image.unique_id  # still the X-ray under review, not the overlay
    assert [widget.image_combo.itemData(i) for i in range(widget.image_combo.count())] == [image.unique_id]
    # the worker's own doubt map for this X-ray, and where it lies: over the X-ray, edge to edge
    expected = quality_hint(Predictor.from_registry(device="cpu").predict(read_xray(folder / f"{CASES[0]}.png"))).heat
    assert expected.max() > 0  # the model doubts part of this X-ray
    np.testing.assert_allclose(np.asarray(overlay.data), expected, atol=1e-5)
    np.testing.assert_allclose(_edges(overlay), _edges(image), atol=1e-6)
    assert viewer.layers[-1].unique_id == overlay.unique_id and overlay.visible
    assert viewer.layers.selection.active.unique_id == mask.unique_id  # painting still goes to the mask
    first_line = widget.model_info.text()
    assert "⚠ check the " in first_line, first_line

    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.review.step(1)
    wait_case_open(qtbot, widget, CASES[1])
    qtbot.waitUntil(lambda: widget.state.reviewed_proposal() is not None, timeout=WAIT_MS)
    [overlay] = _overlays(viewer)
    second = widget.state.reviewed_proposal().heat
    assert overlay.visible and np.asarray(overlay.data) is not None
    np.testing.assert_array_equal(np.asarray(overlay.data), second)  # the open case's map, not the first one's

    # back to the first case: its proposal comes from the worklist's cache, and its map (and place) with it
    qtbot.waitUntil(lambda: widget.review.navigation.settled and not widget.state.running, timeout=WAIT_MS)
    widget.review.step(-1)
    wait_case_open(qtbot, widget, CASES[0])
    qtbot.waitUntil(lambda: widget.model_info.text() == first_line, timeout=WAIT_MS)
    [overlay] = _overlays(viewer)
    np.testing.assert_allclose(np.asarray(overlay.data), expected, atol=1 / 255 + 1e-6)
    assert overlay.visible

    widget.unsure.toggle.setChecked(False)
    assert _overlays(viewer) == []
    qtbot.waitUntil(lambda: widget.review.navigation.settled and not widget.state.running, timeout=WAIT_MS)
    widget.review.save_draft_now()
