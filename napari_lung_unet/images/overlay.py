"""A quick-look RGB picture of a prediction: the radiograph in grey, each lung tinted, with outlines."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .labels import LUNG_COLOURS

_DISPLAY_SAMPLES = 1_000_000  # percentiles on a subsample: as good for display, and cheap on 20-Mpx images


def display_grey(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Scale a 2-D image to uint8 between robust percentiles, so burnt-in text does not wash it out."""
    image = np.asarray(image, dtype=np.float32)
    step = max(1, int(np.sqrt(image.size / _DISPLAY_SAMPLES)))
    lo, hi = np.percentile(image[::step, ::step], [low, high])
    if hi <= lo:
        lo, hi = float(image.min()), float(image.max())
    scaled = (image - lo) * (255.0 / max(hi - lo, 1e-6))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def make_overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.35, outline: bool = True) -> np.ndarray:
    """Return an H×W×3 uint8 picture of ``labels`` (0/1/2) over the grey ``image`` of the same shape."""
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image shape {image.shape[:2]} and labels shape {labels.shape} differ")
    grey = display_grey(image)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    # outlines scale with the image so they stay visible when a 3000-px radiograph is viewed shrunk
    width = max(1, round(min(labels.shape) / 400))
    for label, colour in LUNG_COLOURS.items():
        mask = labels == label
        if not mask.any():
            continue
        tint = np.asarray(colour, np.float32)
        rgb[mask] = ((1.0 - alpha) * rgb[mask] + alpha * tint).astype(np.uint8)
        if outline:
            edge = mask & ~ndimage.binary_erosion(mask, iterations=width, border_value=0)
            rgb[edge] = colour
    return rgb
