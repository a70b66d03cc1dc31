"""The first screen without shared data: the bundled model segments the sample radiograph confidently."""

from __future__ import annotations

import numpy as np
import pytest

from napari_lung_unet._sample_data import SAMPLE_SEED, SAMPLE_SHAPE, make_chest_phantom
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.images.phantom_radiograph import make_radiograph_phantom
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.store.worklist import is_uncertain


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


@pytest.mark.parametrize(("shape", "seed"), [(SAMPLE_SHAPE, SAMPLE_SEED), ((1024, 1024), 20), ((600, 500), 7)])
def test_bundled_model_segments_the_radiograph_phantom_confidently(shape: tuple[int, int], seed: int) -> None:
    image, truth = make_radiograph_phantom(shape, seed=seed)
    prediction = Predictor.from_registry(device="cpu").predict(image)
    assert not is_uncertain(prediction.confidence), prediction.confidence  # no ⚠ on the first screen
    for label in (1, 2):  # each lung on its own side, not just lung pixels somewhere
        assert _dice(prediction.labels == label, truth == label) >= 0.9, label


def test_radiograph_phantom_keeps_make_phantoms_contract() -> None:
    for dtype in (np.uint8, np.uint16, np.float32):
        image, labels = make_radiograph_phantom((96, 80), seed=1, dtype=dtype)
        reference = make_phantom((96, 80), seed=1, dtype=dtype)
        assert image.shape == labels.shape == (96, 80)
        assert image.dtype == reference[0].dtype and labels.dtype == reference[1].dtype == np.uint8
    # radiological orientation: the patient's right lung (1) on the image's left, the heart to the image's right
    _, labels = make_radiograph_phantom(SAMPLE_SHAPE, seed=SAMPLE_SEED)
    assert np.nonzero(labels == 1)[1].mean() < np.nonzero(labels == 2)[1].mean()
    row = labels[int(0.55 * SAMPLE_SHAPE[0])]  # the heart's level: it pushes the left lung away from the midline
    middle = SAMPLE_SHAPE[1] / 2
    assert np.nonzero(row == 2)[0].min() - middle > middle - np.nonzero(row == 1)[0].max()
    image, truth = make_chest_phantom()[0][0], make_chest_phantom()[1][0]
    np.testing.assert_array_equal(truth, make_radiograph_phantom(SAMPLE_SHAPE, seed=SAMPLE_SEED)[1])
    assert image.shape == SAMPLE_SHAPE
