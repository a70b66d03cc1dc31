"""The first screen without shared data: the bundled model segments the sample radiograph confidently."""

from __future__ import annotations

import numpy as np
import pytest

from napari_lung_unet._sample_data import SAMPLE_SEED, SAMPLE_SHAPE
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.images.phantom_radiograph import make_radiograph_phantom
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.store.worklist import is_uncertain

from phantom_checks import lungs_darker_than_mediastinum


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
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535), (np.float32, 1.0)):
        image, labels = make_radiograph_phantom((96, 80), seed=1, dtype=dtype)
        assert image.shape == labels.shape == (96, 80)
        assert image.dtype == dtype and labels.dtype == np.uint8
        assert image.min() == 0 and image.max() == top  # integers use the detector's full range, floats [0, 1]
        assert set(np.unique(labels)) == {0, 1, 2}
    # radiological orientation: the patient's right lung (1) on the image's left, the heart to the image's right
    image, labels = make_radiograph_phantom(SAMPLE_SHAPE, seed=SAMPLE_SEED)
    assert np.nonzero(labels == 1)[1].mean() < np.nonzero(labels == 2)[1].mean()
    row = labels[int(0.55 * SAMPLE_SHAPE[0])]  # the heart's level: it pushes the left lung away from the midline
    middle = SAMPLE_SHAPE[1] / 2
    assert np.nonzero(row == 2)[0].min() - middle > middle - np.nonzero(row == 1)[0].max()
    # the labels mark the film's dark lung fields, not some other region
    assert lungs_darker_than_mediastinum(image, labels) >= 0.95
