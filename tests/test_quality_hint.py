"""The dock's quality hint (issue 29), the half computed off the GUI thread: the line, the place and the
doubt map of a real proposal, and the map's round trip through a worklist's cache naming the same place."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.widget.quality_hint import heat_from_png, heat_to_png, place_of, quality_hint

REFERENCE = Path(__file__).resolve().parents[1] / "napari_lung_unet" / "reference" / "images"


def test_the_hint_names_where_the_model_doubted_and_its_cache_names_it_again(tiny_current: str, tmp_path: Path) -> None:
    pixels = iio.imread(REFERENCE / "00870a9c.png")[:, :300]  # CC BY; not square
    prediction = Predictor.from_registry(device="cpu").predict(pixels)
    hint = quality_hint(prediction, below=1.0)  # an untrained tiny model: everything is flagged
    assert hint.text.startswith(f"expected Dice {prediction.expected_dice:.2f}")
    assert hint.heat.shape == np.asarray(prediction.small_probability).shape and hint.image_shape == pixels.shape
    assert (hint.place == "") == (hint.heat.max() == 0) and 0.0 <= hint.heat.min() and hint.heat.max() <= 1.0
    prob = np.asarray(prediction.small_probability, np.float32)
    doubt = 2.0 * np.minimum(prob, 1.0 - prob)
    inside = hint.heat > 0
    np.testing.assert_allclose(hint.heat[inside], doubt[inside], atol=1e-6)  # the model's own doubt, where it is unsure
    assert hint.place and hint.text.endswith(f" — check {hint.place}")

    path = tmp_path / "unsure.png"
    iio.imwrite(path, heat_to_png(hint.heat))
    back = heat_from_png(iio.imread(path))
    assert np.abs(back - hint.heat).max() <= 0.5 / 255 + 1e-6
    assert place_of(back, np.asarray(prediction.labels)) == hint.place
