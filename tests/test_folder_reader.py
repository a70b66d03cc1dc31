"""A folder opens as a worklist through napari itself: ``viewer.open(folder, plugin=...)``."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_lung_unet._folder_reader import get_folder_reader
from napari_lung_unet.store.worklist import PROPOSED

from case_open import wait_case_open

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]


def test_only_folders_of_xrays_are_claimed(xray_folder: Path, tmp_path: Path):
    assert get_folder_reader(str(xray_folder)) is not None
    assert get_folder_reader(str(xray_folder / "case0.png")) is None  # files stay napari's
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    assert get_folder_reader(str(empty)) is None
    assert get_folder_reader([str(xray_folder), str(empty)]) is None


def test_viewer_open_folder_starts_the_worklist(make_napari_viewer, tiny_current, qtbot, xray_folder: Path):
    viewer = make_napari_viewer()
    added = viewer.open(xray_folder, plugin="napari-lung-unet")
    assert added == []  # the dock makes the layers, the reader adds none
    widget = viewer.window._dock_widgets["Lung U-Net (napari-lung-unet)"].widget()
    review = widget.review
    wait_case_open(qtbot, widget, "case0")  # listed and read off the GUI thread
    assert review.worklist is not None and review.worklist.folder == xray_folder
    qtbot.waitUntil(lambda: review.case.status == PROPOSED, timeout=120_000)
    assert [layer.name for layer in viewer.layers] == ["x-ray", "lungs"]
    # opening it again reuses the same dock and the same layers
    viewer.open(xray_folder, plugin="napari-lung-unet")
    wait_case_open(qtbot, widget, "case0")
    assert [layer.name for layer in viewer.layers] == ["x-ray", "lungs"]
    assert len([d for d in viewer.window._dock_widgets if d.startswith("Lung U-Net")]) == 1
