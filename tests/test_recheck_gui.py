"""The dock's Model history: **Recheck on later cases** (issue 32) shows what ``lung-unet models --recheck``
finds for the selected candidate, run in its own process, with the GUI thread free meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.store.corrections import CorrectionsStore
from test_recheck import _accept, registry  # noqa: F401 - the fixture: "base" current, "cand" made before the cases
from training.recheck import recheck

pytestmark = pytest.mark.gui
WAIT_MS = 180_000


def test_recheck_in_the_dock_shows_the_commands_finding(make_napari_viewer, qtbot, registry: Registry, tmp_path: Path) -> None:  # noqa: ANN001, F811
    store = CorrectionsStore(tmp_path / "corrections")
    for i in range(3):
        _accept(store, f"later{i}", 60 + i, 10 + i)
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-lung-unet", "Lung U-Net")
    history = widget.history
    history.store_dir = store.root
    assert not history.recheck.isHidden()  # on the Model tab, under "Make selected current"
    history.select("cand")
    with qtbot.waitSignal(history.rechecked, timeout=WAIT_MS) as shown:
        assert history.recheck_selected()
        assert not history.recheck.isEnabled()  # one at a time; the GUI thread goes on meanwhile
    expected = recheck("cand", store.root, Registry()).line()
    assert shown.args[0] == expected == history.recheck_result.text()
    assert history.recheck.isEnabled()

    history.select("base")  # the current one: the command's own one-line refusal
    with qtbot.waitSignal(history.rechecked, timeout=WAIT_MS) as shown:
        history.recheck_selected()
    assert "base is the current model already" in shown.args[0]
