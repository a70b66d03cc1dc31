"""The dock's quality hint (issue 29): computed off the GUI thread, shown as a heat overlay that lines up with
the X-ray and can be toggled. The dock wiring is the lead's; this checks the parts it calls."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.widget.quality_hint import HINT_SUFFIX, quality_hint, show_hint

REFERENCE = Path(__file__).resolve().parents[1] / "napari_lung_unet" / "reference" / "images"


@pytest.mark.gui
def test_the_unsure_overlay_covers_the_xray_and_toggles(make_napari_viewer, tiny_current: str) -> None:  # noqa: ANN001
    viewer = make_napari_viewer()
    pixels = iio.imread(REFERENCE / "00870a9c.png")[:, :300]  # CC BY; not square: the overlay must stretch per axis
    image = viewer.add_image(pixels, name="chest", scale=(0.2, 0.2))
    prediction = Predictor.from_registry(device="cpu").predict(pixels)
    hint = quality_hint(prediction, below=1.0)  # an untrained tiny model: everything is flagged
    assert hint.text.startswith(f"expected Dice {prediction.expected_dice:.2f}")
    assert (hint.place == "") == (hint.heat.max() == 0) and hint.heat.max() <= 1.0
    if hint.place:
        assert hint.text.endswith(f" — check {hint.place}")
    layer = show_hint(viewer, image, hint)
    assert layer.name == "chest" + HINT_SUFFIX and viewer.layers[-1] is layer
    # the overlay covers the X-ray exactly: the outer edges of their pixels meet, on both axes
    def edges(l):  # noqa: ANN001, ANN202
        half = np.asarray(l.scale) / 2
        return np.stack([l.extent.world[0] - half, l.extent.world[1] + half])

    np.testing.assert_allclose(edges(layer), edges(image), atol=1e-6)
    layer.visible = False
    again = show_hint(viewer, image, hint, visible=False)  # a new proposal replaces it, still hidden
    assert [l.name for l in viewer.layers].count("chest" + HINT_SUFFIX) == 1 and not again.visible
