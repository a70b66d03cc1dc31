"""A proposal that comes back after its worklist was closed is not taken for another worklist's case
of the same name. Real viewer, the bundled model on the CPU; run under a display."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.images.read import read_xray
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.store.worklist import Worklist

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

WAIT_MS = 120_000


def _folder(root: Path, seed: int) -> Path:
    root.mkdir()
    iio.imwrite(root / "case0.png", make_phantom((160, 144), seed=seed, dtype=np.uint8)[0])
    return root


def test_a_late_proposal_from_a_closed_worklist_never_lands_on_a_same_named_case(
    make_napari_viewer, qtbot, tmp_path: Path,
) -> None:
    first, second = _folder(tmp_path / "ward-a", 20), _folder(tmp_path / "ward-b", 31)
    mine = Predictor.from_registry(device="cpu").predict(read_xray(second / "case0.png")).labels
    theirs = Predictor.from_registry(device="cpu").predict(read_xray(first / "case0.png")).labels
    assert not np.array_equal(mine, theirs)  # the two images' proposals tell apart

    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-lung-unet", "Lung U-Net")
    widget.device_combo.setCurrentText("cpu")
    review, state = widget.review, widget.state
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        assert review.open_folder(first)
    shown: list[np.ndarray] = []
    state.labels_shown.connect(lambda layer: shown.append(np.array(layer.data)))
    assert review.propose() is not None  # ward A's case0 again; its result is delivered after the switch below
    assert review.open_folder(second)  # ward B has a case0 too
    qtbot.waitUntil(lambda: not state.running and review.case is not None and "lungs" in viewer.layers
                    and np.array_equal(viewer.layers["lungs"].data, mine), timeout=WAIT_MS)
    qtbot.wait(300)
    np.testing.assert_array_equal(viewer.layers["lungs"].data, mine)
    assert not any(np.array_equal(mask, theirs) for mask in shown), "ward A's proposal was shown on ward B's case0"
    review.save_draft_now()

    np.testing.assert_array_equal(Worklist(second).load_proposal("case0", mine.shape), mine)
    np.testing.assert_array_equal(Worklist(first).load_proposal("case0", theirs.shape), theirs)
