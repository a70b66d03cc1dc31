"""Post-processing on bounding boxes (issue 14): the same masks as on the whole image, for less work."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_lung_unet.nn import postprocess as pp
from napari_lung_unet.images.phantom import make_phantom


def _probabilities(seed: int) -> np.ndarray:
    """A lung-like probability map at 96² with noise: specks, holes, touching lungs, ragged edges."""
    rng = np.random.default_rng(seed)
    _, labels = make_phantom((96, 96), seed=seed)
    smooth = ndimage.gaussian_filter((labels > 0).astype(np.float32), 1.5)
    return np.clip(smooth + rng.normal(0, 0.2 * (seed % 3), smooth.shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("seed", range(8))
def test_box_steps_equal_the_whole_image_steps(seed: int) -> None:
    prob = _probabilities(seed)
    labelled, n = ndimage.label(prob > 0.5)
    for k in range(1, n + 1):
        whole = ndimage.binary_fill_holes(labelled == k)
        assert np.array_equal(pp._fill_holes_in_box(labelled, k, ndimage.find_objects(labelled)[k - 1]), whole)
    small = pp.clean_mask(prob > 0.5)
    if not small.any():
        return
    full_side = pp._nearest_lung(small)
    box_side = pp._nearest_lung(small, margin=2)
    cleaned = np.where(small > 0, 1.0, 0.0).astype(np.float32)
    for shape in [(96, 96), (200, 130), (517, 389)]:
        expected = pp._upsample_labels(cleaned, full_side, small, shape, 0.5)
        got = pp._upsample_labels(cleaned, box_side, small, shape, 0.5)
        assert np.array_equal(got[0], expected[0]) and got[1] == expected[1]
