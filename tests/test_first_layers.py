"""The first case's layers are made before its pixels arrive (issue 33, the heartbeat on opening a folder):
napari's one-time costs are paid on a background thread as the dock opens, and the worklist's X-ray and
mask layers are created empty and hidden while the first case is read, then filled, never re-created."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pint
import pytest
from napari.layers import Image, Labels

from case_open import wait_case_open

from napari_lung_unet.widget import layers
from napari_lung_unet.widget.warm_up import warmed_up

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]


def test_the_dock_warms_napari_up_off_the_gui_thread(docked_widget, qtbot) -> None:  # noqa: ANN001
    qtbot.waitUntil(warmed_up, timeout=60_000)
    registry = pint.get_application_registry().get()
    assert not isinstance(registry, pint.LazyRegistry)  # built by the warm-up, or by napari before the dock
    viewer = docked_widget.viewer
    layer = viewer.add_image(np.zeros((8, 8), np.uint8), scale=(0.5, 0.5), units="mm")  # units from that registry
    assert str(layer.units[0]) == "millimeter"


def test_the_worklists_layers_wait_hidden_for_the_first_case_and_are_filled(docked_widget, qtbot, xray_folder: Path) -> None:  # noqa: ANN001
    widget = docked_widget
    viewer = widget.viewer
    widget.review.open_folder(xray_folder)
    # before the first case is read: one image and its mask, both hidden and empty
    qtbot.waitUntil(lambda: layers.labels_of(viewer, layers.find_layer(viewer, widget.state.xray_id)) is not None,
                    timeout=60_000)
    image = layers.find_layer(viewer, widget.state.xray_id)
    mask = layers.labels_of(viewer, image)
    if widget.review.case is None:  # still reading: what waits is empty, and nothing of it shows
        assert not image.visible and not mask.visible
        assert not np.any(mask.data)
    wait_case_open(qtbot, widget)
    # the case filled those two layers (the dock's viewer hands out proxies: compared by id): no other pair was made
    assert [type(layer) for layer in viewer.layers] == [Image, Labels]
    assert [layer.unique_id for layer in viewer.layers] == [image.unique_id, mask.unique_id]
    assert image.visible and mask.visible
    assert image.data.shape == mask.data.shape == widget.state.xray.pixels.shape
    qtbot.waitUntil(lambda: not widget.state.running, timeout=120_000)  # the proposal, before the viewer closes
