"""The Lung U-Net dock widget in a real napari viewer, with real (tiny or bundled) U-Nets.

Run under a display: ``xvfb-run -a pytest tests/test_widget.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari.layers import Image, Labels
from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.widget import LungUNetWidget

from phantom_checks import lungs_darker_than_mediastinum

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

PLUGIN = "napari-lung-unet"
WIDGET = "Lung U-Net"
WAIT_MS = 120_000  # a slow CI machine sharing its cores with training




@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def widget(viewer) -> LungUNetWidget:
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    assert isinstance(widget, LungUNetWidget)
    return widget


@pytest.fixture
def errors():
    """Error notifications shown during the test (napari's notification manager is global)."""
    seen: list[str] = []

    def collect(notification) -> None:
        if notification.severity == NotificationSeverity.ERROR:
            seen.append(str(notification.message))

    notification_manager.notification_ready.connect(collect)
    yield seen
    notification_manager.notification_ready.disconnect(collect)


def click_and_wait(qtbot, widget: LungUNetWidget, expect_result: bool = False):
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS) as blocker:
        widget.propose_button.click()
        # the button is released only when the worker's finished signal reaches the GUI thread
        assert not widget.propose_button.isEnabled()
        assert widget.worker is not None
    assert widget.propose_button.isEnabled()
    assert not widget.state.running
    assert blocker.args[0] is not None or not expect_result, widget.status_label.text()
    return blocker.args[0]


def add_phantom(viewer, shape=(256, 224), **kwargs) -> Image:
    image, _ = make_phantom(shape, seed=1)
    return viewer.add_image(image, name="phantom", **kwargs)


def test_propose_with_bundled_default_model(viewer, widget, qtbot, errors):
    layer = add_phantom(viewer, scale=(0.5, 0.7), translate=(3.0, 4.0))
    assert widget.image_combo.currentText() == "phantom"
    current = Registry().current_version()
    assert widget.selected_model() == current  # the registry's current version is preselected
    widget.device_combo.setCurrentText("cpu")

    result = click_and_wait(qtbot, widget)

    assert errors == []
    assert result is not None and result.model_version == current
    lungs = viewer.layers["lungs (phantom)"]  # the image's own mask, named after it
    assert isinstance(lungs, Labels)
    assert lungs.data.shape == layer.data.shape
    assert widget.lungs_layer().unique_id == lungs.unique_id
    assert set(np.unique(lungs.data)) <= {0, 1, 2}
    assert tuple(lungs.scale) == (0.5, 0.7)
    assert tuple(lungs.translate) == (3.0, 4.0)
    assert lungs.metadata["model_version"] == current
    assert current in widget.status_label.text()


def test_second_proposal_updates_the_same_layer(viewer, widget, qtbot, tiny_model_dir: Path):
    add_phantom(viewer)
    widget.model_combo.setEditText(str(tiny_model_dir))  # a model folder path instead of a version
    assert widget.selected_model() == str(tiny_model_dir)

    first = click_and_wait(qtbot, widget)
    lungs = widget.lungs_layer()
    assert first.model_version == "tiny"
    lungs.data[:] = 0  # as if the user wiped it by hand; the next proposal must restore it

    second = click_and_wait(qtbot, widget)

    assert widget.lungs_layer() is lungs
    assert [layer.name for layer in viewer.layers] == ["phantom", "lungs (phantom)"]
    np.testing.assert_array_equal(lungs.data, second.labels)
    lungs.undo()  # the re-proposal is one undoable edit
    assert not lungs.data.any()
    assert widget.model_info.text().startswith("Proposal by tiny")


def test_each_image_gets_its_own_mask_directly_above_it(viewer, widget, qtbot, tiny_model_dir: Path):
    widget.model_combo.setEditText(str(tiny_model_dir))
    add_phantom(viewer, shape=(128, 160))
    click_and_wait(qtbot, widget)
    first = viewer.layers["lungs (phantom)"]
    first_mask = first.data.copy()
    viewer.add_image(make_phantom((96, 80), seed=2)[0], name="smaller")
    assert widget.image_combo.currentText() == "smaller"  # a newly added image is selected

    click_and_wait(qtbot, widget)

    assert viewer.layers["lungs (smaller)"].data.shape == (96, 80)
    np.testing.assert_array_equal(first.data, first_mask)  # the first image's mask is untouched
    names = [layer.name for layer in viewer.layers]
    assert names == ["phantom", "lungs (phantom)", "smaller", "lungs (smaller)"]
    assert all(layer.visible for layer in viewer.layers)
    # the brush and lung switch act on the mask of the image being corrected
    assert viewer.layers["lungs (smaller)"].mode == "paint"
    widget.controls.brush.setValue(31)
    assert viewer.layers["lungs (smaller)"].brush_size == 31 and first.brush_size != 31


def test_rgb_layer_is_converted_to_grey(viewer, widget, qtbot, tiny_model_dir: Path):
    grey, _ = make_phantom((128, 128), seed=5, dtype=np.uint8)
    viewer.add_image(np.stack([grey] * 3, axis=-1), name="rgb", rgb=True)
    widget.model_combo.setEditText(str(tiny_model_dir))

    result = click_and_wait(qtbot, widget)

    assert result is not None
    assert viewer.layers["lungs (rgb)"].data.shape == (128, 128)


@pytest.mark.parametrize("shape", [(5, 64, 64), (64, 64, 3)], ids=["slices-first", "3-slices-last"])
def test_3d_layer_gives_a_notification_and_no_layer(viewer, widget, qtbot, errors, tiny_model_dir: Path, shape):
    # (64, 64, 3) added without rgb=True is a 3-slice stack to napari, not a colour image
    viewer.add_image(np.random.default_rng(0).random(shape, dtype=np.float32), name="stack", rgb=False)
    widget.model_combo.setEditText(str(tiny_model_dir))

    result = click_and_wait(qtbot, widget)

    assert result is None
    assert not any(layer.name.startswith("lungs") for layer in viewer.layers)
    assert len(errors) == 1
    assert "stack" in errors[0] and "3-D" in errors[0]
    assert "3-D" in widget.status_label.text()


def test_unknown_model_gives_a_notification(viewer, widget, qtbot, errors, tmp_path: Path):
    add_phantom(viewer)
    widget.model_combo.setEditText(str(tmp_path / "no-such-model"))

    assert click_and_wait(qtbot, widget) is None

    assert not any(layer.name.startswith("lungs") for layer in viewer.layers)
    assert len(errors) == 1 and "no-such-model" in errors[0]


def test_no_image_layer_explains_instead_of_running(viewer, widget, errors):
    assert widget.propose() is None
    assert widget.worker is None
    assert len(errors) == 1 and "image" in errors[0].lower()


def test_image_picker_follows_the_layer_list(viewer, widget):
    def choices() -> list[str]:
        return [widget.image_combo.itemText(i) for i in range(widget.image_combo.count())]

    first = add_phantom(viewer)
    viewer.add_labels(np.zeros((8, 8), np.uint8), name="not an image")
    viewer.add_image(np.zeros((40, 40), np.float32), name="second")
    assert choices() == ["phantom", "second"]
    widget.image_combo.setCurrentText("phantom")

    first.name = "renamed"
    assert choices() == ["renamed", "second"]
    assert widget.selected_image_layer().unique_id == first.unique_id  # the choice survives a rename
    widget.image_combo.setCurrentText("second")
    first.name = "renamed again"
    assert widget.selected_image_layer().name == "second"
    viewer.layers.remove("second")
    assert choices() == ["renamed again"]


def test_model_picker_lists_registry_versions(viewer, tiny_model_dir: Path):
    from dataclasses import replace

    from napari_lung_unet.nn.model_io import load_model

    loaded = load_model(tiny_model_dir)
    for version in ("tiny", "tiny-b"):  # registered in this order: the picker lists them after the bundled one
        Registry().add(loaded.model, replace(loaded.card, version=version))
    Registry().set_current("tiny-b")
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    versions = [widget.model_combo.itemData(i) for i in range(widget.model_combo.count())]
    assert versions == [Registry().bundled_version, "tiny", "tiny-b"]
    assert widget.model_combo.currentData() == "tiny-b"
    assert "(current)" in widget.model_combo.currentText()
    assert all("(current)" not in widget.model_combo.itemText(i) for i in range(2))
    assert [widget.device_combo.itemText(i) for i in range(widget.device_combo.count())] == [
        "auto",
        "cpu",
        "cuda",
        "mps",
    ]


def test_sample_data_opens_phantom_with_known_mask(viewer):
    viewer.open_sample(PLUGIN, "chest_phantom")

    image = viewer.layers["chest phantom"]
    truth = viewer.layers["phantom truth"]
    assert isinstance(image, Image) and isinstance(truth, Labels)
    assert image.data.shape == truth.data.shape == (512, 512)
    assert not truth.visible  # hidden: never mistaken for (or covering) a proposal
    assert set(np.unique(truth.data)) == {0, 1, 2}
    # right lung (label 1) on the image's left, as in a PA view
    cols = np.nonzero(truth.data == 1)[1].mean(), np.nonzero(truth.data == 2)[1].mean()
    assert cols[0] < cols[1]
    # the truth belongs to this image: its lungs are the film's dark fields, row by row
    assert lungs_darker_than_mediastinum(image.data, truth.data) >= 0.95
    # and to no other: shifted a quarter of the width, it no longer lines up
    assert lungs_darker_than_mediastinum(image.data, np.roll(truth.data, 128, axis=1)) < 0.5
