"""A damaged models/CURRENT shown in the dock as one clear line with its repair hint, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_lung_unet.nn.registry import DamagedPointer, Registry

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

PLUGIN, WIDGET = "napari-lung-unet", "Lung U-Net"


def damage_pointer(home: Path) -> str:
    Registry().pointer.parent.mkdir(parents=True, exist_ok=True)
    Registry().pointer.write_text("no-such-version\n")
    with pytest.raises(DamagedPointer) as raised:
        Registry().current_version()
    return str(raised.value)


def test_dock_opens_on_a_damaged_pointer_and_says_how_to_repair(make_napari_viewer, isolated_home, qtbot):
    message = damage_pointer(isolated_home)
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget.device_combo.setCurrentText("cpu")
    assert "lung-unet models --rollback" in message
    assert widget.registry_problem.isVisibleTo(widget)
    shown = widget.registry_problem.text()
    assert message in shown  # the file, the cause and the repair command, as the registry words them
    assert widget.history.versions()  # the versions are still listed, so one can be made current
    assert not any(widget.history.table.item(row, 0).text() for row in range(widget.history.table.rowCount()))

    # repairing from the dock: make a version current in Model history
    widget.history.select(Registry().bundled_version)
    assert widget.history.make_selected_current()
    qtbot.waitUntil(lambda: not widget.registry_problem.isVisibleTo(widget), timeout=5000)
    assert Registry().current_version() == Registry().bundled_version
    assert "(current)" in widget.model_combo.currentText()


def test_proposal_on_a_damaged_pointer_fails_in_one_line(make_napari_viewer, isolated_home, qtbot):
    from napari_lung_unet.images.phantom_radiograph import make_radiograph_phantom

    message = damage_pointer(isolated_home)
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget.device_combo.setCurrentText("cpu")
    viewer.add_image(make_radiograph_phantom((128, 128), seed=1)[0], name="x")
    with qtbot.waitSignal(widget.proposal_finished, timeout=60_000) as done:
        widget.propose()
    assert done.args[0] is None
    assert "Traceback" not in widget.status_label.text() and message in widget.status_label.text()
