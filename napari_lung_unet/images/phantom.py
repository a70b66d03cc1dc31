"""A synthetic chest radiograph with a known lung mask, for the sample data and the unit tests.

Built to look like a PA chest film at a glance, so the real model segments it: a body that fills
the frame, dark textured lungs with soft edges, a bright spine and mediastinum, a heart bulging
into the left lung, domed diaphragms over a bright abdomen, clavicles, rib arcs and noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _lung(x: np.ndarray, y: np.ndarray, cx: float, half_width: float, top: float, base: float, side: int) -> np.ndarray:
    """One lung: a rounded apex widening downward, a curved outer wall and a domed diaphragm."""
    t = np.clip((y - top) / (base - top), 0.0, 1.0)
    # elliptical apex: width grows like sqrt near the top, so the apex is rounded, not flat
    width = half_width * np.sqrt(np.clip(t / 0.35, 0.0, 1.0)) * (0.85 + 0.15 * t)
    outer = cx + side * width
    inner = cx - side * width * 0.75
    lo, hi = np.minimum(inner, outer), np.maximum(inner, outer)
    dome = base - 0.07 * np.cos(np.clip((x - cx) / half_width, -1.0, 1.0) * np.pi / 2) ** 2
    return (x > lo) & (x < hi) & (y > top) & (y < dome)


def make_phantom(shape: tuple[int, int] = (512, 512), seed: int = 0, dtype: type = np.uint16) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(image, labels)``: the radiograph and its true labels (1 = right lung, 2 = left lung).

    The patient's right lung is on the image's left, as in a standard PA view.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = yy / h, xx / w
    j = rng.uniform(-0.015, 0.015, size=6)

    right = _lung(x, y, 0.31 + j[0], 0.17, 0.10 + j[2], 0.80 + j[3], side=-1)
    left = _lung(x, y, 0.69 + j[1], 0.16, 0.11 + j[2], 0.83 + j[4], side=+1)
    heart = ((x - 0.57) / 0.15) ** 2 + ((y - 0.66) / 0.15) ** 2 < 1.0
    mediastinum = np.abs(x - 0.5) < 0.06 + 0.03 * np.clip((y - 0.4) / 0.4, 0, 1)
    labels = np.zeros(shape, np.uint8)
    labels[right & ~mediastinum] = 1
    labels[left & ~mediastinum & ~heart] = 2

    body = ((x - 0.5) / 0.50) ** 2 + ((y - 0.95) / 1.05) ** 2 < 1.0
    image = np.where(body, 0.62, 0.08).astype(np.float32)
    image += 0.08 * body * np.clip(np.abs(x - 0.5) / 0.5, 0, 1) ** 4  # thicker tissue at the edges
    texture = ndimage.gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), max(h, w) / 120)
    texture /= max(float(np.abs(texture).max()), 1e-6)
    lungs = labels > 0
    # lungs darken toward the top and brighten toward the hila, as on a real film
    image[lungs] = 0.22 + 0.05 * texture[lungs] + 0.10 * y[lungs] + 0.12 * np.clip(1 - np.abs(x[lungs] - 0.5) / 0.2, 0, 1)
    image[mediastinum & body] = 0.82
    image[heart & ~lungs] = 0.80
    abdomen = body & ~lungs & (y > 0.74) & ~((y < 0.86) & (np.abs(x - 0.5) > 0.38))
    image[abdomen] = np.maximum(image[abdomen], 0.76)
    # ribs over the whole chest, brighter where they cross dark lung
    for k in range(10):
        for side in (-1, 1):
            arc = np.abs(y - (0.13 + 0.068 * k) - 0.10 * ((x - 0.5) * side / 0.45) ** 2 * (side * (x - 0.5) > 0)) < 0.009
            image[arc & body & (side * (x - 0.5) > 0.05)] += 0.05
    clavicle = (np.abs(y - 0.10 - 0.08 * np.abs(x - 0.5)) < 0.012) & (np.abs(x - 0.5) > 0.05) & (np.abs(x - 0.5) < 0.32)
    image[clavicle] += 0.15
    image = ndimage.gaussian_filter(image, sigma=max(h, w) / 300)
    image += rng.normal(0.0, 0.015, shape).astype(np.float32)
    return film_pixels(image, dtype), labels


def film_pixels(image: np.ndarray, dtype: type) -> np.ndarray:
    """A [0, 1] float image as ``dtype`` pixels: integers use their full range, as a detector's output does."""
    image = np.clip(image, 0.0, 1.0)
    if np.issubdtype(dtype, np.integer):
        return np.round(image * np.iinfo(dtype).max).astype(dtype)
    return image.astype(dtype)
