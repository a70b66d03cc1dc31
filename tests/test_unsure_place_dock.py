"""The dock says where to look (issue 29 item 3): a proposal the model is unsure of reads
"expected Dice 0.83 ⚠ check the middle left lung", and the lung it names is where the model doubted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_lung_unet.images.read import read_xray
from napari_lung_unet.nn.predict import Predictor

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

WAIT_MS = 120_000
REFERENCE = Path(__file__).resolve().parents[1] / "napari_lung_unet" / "reference" / "images"
CASE = "3fd337c1"  # CC BY 3.0 (attribution.csv): the bundled model is unsure of its left lung


def test_an_unsure_proposal_names_the_lung_to_check(bundled_dock, qtbot) -> None:  # noqa: ANN001
    widget = bundled_dock
    xray = read_xray(REFERENCE / f"{CASE}.png")
    widget.viewer.add_image(xray.pixels, name=CASE, colormap="gray")
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.propose()
    line = widget.model_info.text()
    assert "expected Dice" in line and "⚠ check the " in line, line
    side = "left" if " left lung" in line else "right" if " right lung" in line else None
    assert side is not None, line

    # the model's own doubt, 2·min(p, 1 − p), lies mostly in the lung the line names (radiological view:
    # the patient's left lung is on the image's right)
    prob = np.asarray(Predictor.from_registry(device="cpu").predict(xray).small_probability, dtype=np.float32)
    doubt = 2.0 * np.minimum(prob, 1.0 - prob)
    half = doubt.shape[1] // 2
    image_left, image_right = doubt[:, :half].sum(), doubt[:, half:].sum()
    assert (image_right > image_left) if side == "left" else (image_left > image_right), (line, image_left, image_right)
