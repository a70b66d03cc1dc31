"""The fine-tune verdict, Model history and long names in the real 240-px dock (issue 20, items 5 and 7).

A real viewer at a laptop's and a desktop's size; the result comes from a real fine-tune run by
the panel's own child process.
"""

from __future__ import annotations

import json
import shutil

import pytest
from qtpy.QtCore import QPoint
from qtpy.QtWidgets import QMessageBox

from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.nn.model_io import load_model
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.settings import corrections_dir
from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsStore

WAIT_MS = 300_000
SIZES = [(1366, 768), (1920, 1080)]


def _dock(make_napari_viewer, size: tuple[int, int]):  # noqa: ANN202 - Qt types load lazily
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*size)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-lung-unet", "Lung U-Net")
    widget.device_combo.setCurrentText("cpu")
    return widget


def _in_view(widget, child) -> bool:  # noqa: ANN001
    """Whether ``child`` is shown inside the dock's scroll area without scrolling."""
    viewport = widget.scroll.viewport()
    top = child.mapTo(viewport, QPoint(0, 0))
    return child.isVisible() and top.y() >= 0 and top.y() + child.height() <= viewport.height() and top.x() + child.width() <= viewport.width()


def _fits(widget) -> bool:  # noqa: ANN001
    return widget.scroll.widget().minimumSizeHint().width() <= widget.scroll.viewport().width()


@pytest.fixture
def trained_current(phantom_parent) -> str:  # noqa: ANN001
    """A parent that segments phantoms, current: a wrecked candidate of it is measurably worse."""
    shutil.copytree(phantom_parent, Registry().models_dir / "parent")
    Registry().set_current("parent")
    return "parent"


@pytest.mark.parametrize("size", SIZES, ids=["1366x768", "1920x1080"])
def test_verdict_first_checks_folded_and_a_rejected_model_asks_first(make_napari_viewer, trained_current, qtbot, size) -> None:
    from napari_lung_unet.widget.finetune_text import verdict

    store = CorrectionsStore(corrections_dir())
    for i in range(4):
        image, labels = make_phantom((128, 128), seed=40 + i)
        store.add(image, labels, CorrectionRecord(f"c{i}", f"/site/c{i}.png", "0" * 64, trained_current, 0.0))
    widget = _dock(make_napari_viewer, size)
    widget.tabs.setCurrentIndex(1)  # the Model tab
    finetune, history = widget.finetune, widget.history
    finetune.steps, finetune.no_replay, finetune.extra_args = 3, True, ["--lr", "50"]  # a wrecked candidate
    with qtbot.waitSignal(finetune.finished, timeout=WAIT_MS) as done:
        finetune.button.click()
    result = done.args[0]
    assert result is not None and result["status"] == "rejected", result
    held = next(c for c in result["checks"] if c["kind"] == "holdout")
    qtbot.wait(100)

    # the verdict first, in words and numbers; the checks folded away
    line = finetune.status.text()
    assert line == verdict(result)
    assert line.startswith("Not promoted: your held-out corrections ") and f"({held['before']:.3f} → {held['after']:.3f})" in line
    assert "\n" not in line and "nats" not in line and "Fisher" not in line
    assert _in_view(widget, finetune.status) and _in_view(widget, finetune.details_button)
    assert finetune.details.isHidden()
    finetune.details_button.click()
    qtbot.wait(50)
    assert finetune.details.isVisible() and "FAILED" in finetune.details.text() and result["version"] in finetune.details.text()
    assert _fits(widget)  # nothing at the dock's side is cut off, folded or not
    finetune.details_button.click()
    assert finetune.details.isHidden()

    # Model history: version, status and Dice in view, no sideways scrolling
    version = result["version"]
    row = history.versions().index(version)
    assert history.table.item(row, 1).text().splitlines() == [version, "rejected", f"Dice {held['before']:.3f} → {held['after']:.3f}"]
    table = history.table
    assert sum(table.columnWidth(c) for c in range(table.columnCount())) <= table.viewport().width()
    assert not table.horizontalScrollBar().isVisible()

    # making the rejected version current asks first; No leaves everything as it was
    history.select(version)
    assert not history.make_selected_current()
    box = history.confirm
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert version in box.text() and "rejected" in box.text() and "held-out corrections" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: history.confirm is None, timeout=5000)
    assert Registry().current_version() == trained_current and table.item(row, 0).text() == ""

    # Yes makes it current, marks it, and the model box follows
    history.select(version)
    history.make_selected_current()
    with qtbot.waitSignal(history.current_changed, timeout=5000):
        history.confirm.button(QMessageBox.StandardButton.Yes).click()
    assert Registry().current_version() == version
    assert history.table.item(history.versions().index(version), 0).text() == "●"
    assert widget.selected_model() == version

    # a trained model is made current without a question
    history.select(trained_current)
    with qtbot.waitSignal(history.current_changed, timeout=5000):  # weights load on a worker
        assert history.make_selected_current() and history.confirm is None
    assert Registry().current_version() == trained_current


@pytest.mark.parametrize("size", SIZES, ids=["1366x768", "1920x1080"])
def test_a_long_model_name_does_not_widen_the_dock(make_napari_viewer, tiny_current, qtbot, size) -> None:
    long_name = "ft-20261130-234138-123456-site-b-whole-lung-second-round"
    loaded = load_model(Registry().resolve(tiny_current))
    card = ModelCard.from_json(json.dumps({**loaded.card.to_dict(), "version": long_name, "status": "promoted", "parent": tiny_current}))
    Registry().add(loaded.model, card)
    Registry().set_current(long_name)
    widget = _dock(make_napari_viewer, size)
    image, _truth = make_phantom((128, 112), seed=3)
    widget.viewer.add_image(image, name="x-ray")
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS) as done:
        widget.propose()
    assert done.args[0].model_version == long_name
    qtbot.wait(100)
    status = widget.status_label
    assert "…" in status.text() and long_name not in status.text()  # elided in the middle, both ends kept
    assert status.text().startswith("Proposed with ft-20261130-") and "second-round on cpu" in status.text()
    assert status.minimumSizeHint().width() <= widget.scroll.viewport().width()
    widget.tabs.setCurrentIndex(1)
    qtbot.wait(50)
    item = widget.history.table.item(widget.history.versions().index(long_name), 1)
    assert long_name in item.toolTip()
    assert widget.finetune.minimumSizeHint().width() <= widget.scroll.viewport().width()
