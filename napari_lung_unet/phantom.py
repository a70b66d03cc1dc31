"""A synthetic chest radiograph with a known lung mask, for the sample data and the unit tests.

Dark lungs inside a brighter thorax, a bright mediastinum and heart between them, domed
diaphragms, rib arcs over the lung fields, soft-tissue gradient and quantum noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def make_phantom(shape: tuple[int, int] = (512, 512), seed: int = 0, dtype: type = np.uint16) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(image, labels)``: the radiograph and its true labels (1 = right lung, 2 = left lung).

    The patient's right lung is on the image's left, as in a standard PA view.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = yy / h, xx / w  # normalised coordinates

    jitter = rng.uniform(-0.02, 0.02, size=6)
    thorax = ((x - 0.5) / (0.42 + jitter[0])) ** 2 + ((y - 0.52) / 0.50) ** 2 < 1.0
    labels = np.zeros(shape, np.uint8)
    for label, cx, sx in ((1, 0.32 + jitter[1], 0.135), (2, 0.69 + jitter[2], 0.125)):
        top = 0.14 + jitter[3]
        # lung: a rounded apex narrowing toward the top, cut below by a domed diaphragm
        dome = 0.80 + jitter[4] - 0.06 * np.cos((x - cx) / sx * np.pi / 2) + (0.03 if label == 2 else 0.0)
        width = sx * np.sqrt(np.clip((y - top) / 0.25, 0, 1))
        lung = (np.abs(x - cx) < width) & (y > top) & (y < dome)
        labels[lung] = label
    # the heart bulges into the left lung (image right), giving the cardiac notch
    heart = ((x - 0.56) / 0.13) ** 2 + ((y - 0.66) / 0.14) ** 2 < 1.0
    labels[heart & (labels == 2)] = 0
    mediastinum = (np.abs(x - 0.5) < 0.07) & (y > 0.05) & (y < 0.9)
    labels[mediastinum] = 0

    image = np.full(shape, 0.10, np.float32)  # air outside the body
    image[thorax] = 0.70 - 0.15 * y[thorax]  # soft tissue, thicker at the bottom
    image[labels > 0] = 0.22
    image[mediastinum | heart] = 0.85
    image[(y > 0.82) & thorax] = 0.80  # abdomen below the diaphragm
    # ribs: bright arcs over the lungs only, so the mask stays exact
    for k in range(9):
        arc = np.abs(y - (0.17 + 0.075 * k) - 0.06 * ((x - 0.5) / 0.4) ** 2) < 0.010
        image[arc & (labels > 0)] += 0.18
    image = ndimage.gaussian_filter(image, sigma=max(h, w) / 400)
    image += rng.normal(0.0, 0.02, shape).astype(np.float32)
    image = np.clip(image, 0.0, 1.0)
    if np.issubdtype(dtype, np.integer):
        image = np.round(image * np.iinfo(dtype).max).astype(dtype)
    else:
        image = image.astype(dtype)
    return image, labels
