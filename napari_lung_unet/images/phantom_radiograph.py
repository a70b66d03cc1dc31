"""A synthetic PA chest radiograph that the shipped model segments confidently: the first screen.

:func:`.phantom.make_phantom` is a cartoon meant for training tiny models in the tests; a
newcomer without the shared data sees this one instead, so it has to read as a chest film:
a body on a black background with neck, shoulders and arms, dark lungs with vessels fanning out
from the hila, a bright mediastinum and spine, a heart bulging into the left lung, domed
diaphragms (the right one higher), clavicles, posterior and anterior ribs, a gastric bubble under
the left dome and quantum noise. Radiological orientation: the patient's right is on the image's
left. The labels follow the visible lung borders, as the training masks do (heart excluded).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .phantom import film_pixels

RIGHT, LEFT = 1, 2  # labels.py's values; the patient's right lung lies on the image's left (side -1)


def _lung(x: np.ndarray, y: np.ndarray, side: int, j: np.ndarray) -> np.ndarray:
    """One lung field: a rounded apex, a convex lateral wall, a domed base with a sharp costophrenic angle."""
    top = 0.11 + j[0]
    angle = (0.76 if side < 0 else 0.79) + j[1]  # costophrenic angle; the right dome sits higher (liver)
    t = np.clip((y - top) / (angle - top), 0.0, 1.0)
    d = side * (x - 0.5)  # distance from the midline toward this lung's side
    grow = np.sqrt(np.clip(t / 0.14, 0.0, 1.0))  # the apex widens fast, so it is rounded, not pointed
    lateral = 0.25 + 0.075 * grow + 0.11 * t ** 0.6 - 0.02 * t ** 4
    medial = np.maximum(0.25 - 0.075 * grow - 0.13 * t ** 0.5, 0.065 + 0.015 * t)  # the mediastinum's edge
    span = np.clip((d - 0.06) / 0.34, 0.0, 1.0)
    dome = (0.16 if side < 0 else 0.13) * np.sin(np.pi * np.clip(0.15 + 0.8 * span, 0.0, 1.0)) ** 0.7
    return (d > medial) & (d < lateral) & (y > top) & (y < angle - dome)


def _heart(x: np.ndarray, y: np.ndarray, j: np.ndarray) -> np.ndarray:
    """The cardiac silhouette: from just right of the midline to about 60 % across the left hemithorax."""
    return ((x - 0.54 - j[2]) / (0.17 + j[3])) ** 2 + ((y - 0.66) / 0.15) ** 2 < 1.0


def _vessels(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Branching vessel trees from each hilum, drawn as soft lines (pulmonary markings)."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    scale = np.array([h, w], np.float32)

    def branch(p: np.ndarray, angle: float, length: float, width: float, depth: int) -> None:
        n = max(int(length * max(h, w) * 1.5), 2)
        end = p + length * np.array([np.sin(angle), np.cos(angle)])
        pts = p[None] + np.linspace(0.0, 1.0, n)[:, None] * (end - p)[None]
        idx = np.round(pts * scale).astype(int)
        ok = (idx[:, 0] >= 0) & (idx[:, 0] < h) & (idx[:, 1] >= 0) & (idx[:, 1] < w)
        np.add.at(out, (idx[ok, 0], idx[ok, 1]), width)
        if depth > 0:
            for turn in (-1, 1):
                branch(end, angle + turn * rng.uniform(0.25, 0.6), length * rng.uniform(0.6, 0.8), width * 0.7, depth - 1)

    for side, hilum in ((-1, (0.42, 0.42)), (1, (0.44, 0.58))):
        for k in range(5):
            # fan from up-and-out to down-and-out: angle 0 points along +x, pi/2 down
            base_angle = np.pi / 2 - side * (np.pi / 2 - (k - 1.5) * 0.5) * 1.0
            angle = base_angle + rng.uniform(-0.15, 0.15)
            branch(np.array(hilum, np.float32), angle, rng.uniform(0.09, 0.12), 1.0, depth=4)
    return out


def _rib_bands(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Posterior ribs (arching up from the spine, then down and out) and fainter anterior ribs."""
    d = np.abs(x - 0.5)
    ribs = np.zeros(x.shape, np.float32)
    for k in range(10):
        y0 = 0.10 + 0.062 * k
        centre = y0 - 0.05 * np.clip(d / 0.15, 0, 1) + 0.9 * np.clip(d - 0.15, 0, None) ** 1.6
        band = np.abs(y - centre) < 0.012
        cortex = np.abs(np.abs(y - centre) - 0.012) < 0.004  # rib edges are brighter than their middle
        ribs += ((band * 0.05 + cortex * 0.05) * (d > 0.04) * (d < 0.40)).astype(np.float32)
    for k in range(6):  # anterior ribs: run down and in from the lateral wall
        centre = 0.16 + 0.075 * k + 0.25 * (0.40 - d)
        band = np.abs(y - centre) < 0.010
        ribs += (band * 0.025 * (d > 0.18) * (d < 0.40)).astype(np.float32)
    return ribs


def make_radiograph_phantom(
    shape: tuple[int, int] = (512, 512), seed: int = 0, dtype: type = np.uint16
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(image, labels)`` like :func:`.phantom.make_phantom`: 1 = right lung, 2 = left lung."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = yy / h, xx / w
    j = rng.uniform(-0.012, 0.012, size=4)
    d = np.abs(x - 0.5)

    right = _lung(x, y, -1, j[:2])
    left = _lung(x, y, +1, j[2:])
    heart = _heart(x, y, j)
    labels = np.zeros(shape, np.uint8)
    labels[right] = RIGHT
    labels[left & ~heart] = LEFT
    lungs = labels > 0

    def soft(mask: np.ndarray, fraction: float) -> np.ndarray:
        # anatomy has no hard edges except where air meets tissue
        return ndimage.gaussian_filter(mask.astype(np.float32), fraction * max(h, w))

    # soft tissue: neck, rounded shoulders, arms beside a chest wall that bows outward
    shoulder = 0.07 + 0.9 * np.clip(d - 0.09, 0, None) ** 2
    torso = (y > shoulder) & (d < 0.45 + 0.03 * np.sin(np.pi * np.clip(y, 0, 1)))
    arms = (d > 0.46) & (y > 0.11 + 0.25 * (d - 0.46))
    neck = (d < 0.09) & (y <= shoulder)
    body = soft(torso | arms | neck, 0.008)
    image = 0.03 + body * (0.50 + 0.12 * np.clip(1.0 - d / 0.5, 0, 1) ** 0.7)
    image -= 0.12 * soft((np.abs(d - 0.455) < 0.008) & (y > 0.30), 0.006)  # air between arm and chest wall
    # mediastinum widening downward, the trachea's air column in it, the heart low and to the left
    mediastinum = (d < 0.055 + 0.035 * np.clip((y - 0.25) / 0.4, 0, 1)) & (y > 0.05)
    image += 0.13 * soft(mediastinum, 0.01) * body
    image -= 0.10 * soft((d < 0.018) & (y > 0.02) & (y < 0.30), 0.004)
    image += 0.13 * soft(heart & ~mediastinum, 0.006)
    # liver under the right dome, abdomen under both: brightest low down
    below = (y > 0.55) & (d < 0.45) & ~lungs & ~heart
    image += 0.22 * soft(below, 0.012) * np.clip((y - 0.55) / 0.25, 0, 1)
    bubble = ((x - 0.64) / 0.055) ** 2 + ((y - 0.86) / 0.03) ** 2 < 1.0  # gastric air under the left dome
    image -= 0.18 * soft(bubble & ~lungs, 0.004)

    # lungs: air makes them dark, vessels fan out from the hila, denser toward the bases and margins
    vessels = ndimage.gaussian_filter(_vessels(shape, rng), max(h, w) / 500)
    vessels /= max(float(np.percentile(vessels[lungs], 99.5)), 1e-6) if lungs.any() else 1.0
    mottle = ndimage.gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), max(h, w) / 150)
    mottle /= max(float(np.abs(mottle).max()), 1e-6)
    air = soft(lungs, 0.002)
    hilar = np.clip(1.0 - d / 0.3, 0, 1)
    lung_level = 0.18 + 0.08 * y + 0.10 * hilar + 0.03 * mottle + 0.16 * np.clip(vessels, 0, 1.2)
    image = image * (1.0 - air) + lung_level * air
    margin = soft(lungs, 0.008)
    image += 0.10 * (1.0 - margin) * lungs  # tissue thickens along the lung margins

    # bones
    image += _rib_bands(x, y) * body
    spine = d < 0.032
    vertebra = (np.sin(y * np.pi * 28) > -0.5).astype(np.float32)
    image += (0.06 + 0.03 * vertebra) * soft(spine, 0.003) * body
    for side in (-1, 1):
        u = side * (x - 0.5)
        clavicle = (np.abs(y - (0.13 - 0.08 * (u - 0.06) + 0.35 * (u - 0.20) ** 2)) < 0.013) & (u > 0.05) & (u < 0.40)
        image += 0.14 * soft(clavicle, 0.002)
        humerus = ((x - 0.5 - side * 0.47) / 0.045) ** 2 + ((y - 0.19) / 0.07) ** 2 < 1.0
        image += 0.14 * soft(humerus, 0.003)

    image = ndimage.gaussian_filter(image, sigma=max(h, w) / 400)
    image += rng.normal(0.0, 0.012, shape).astype(np.float32)
    return film_pixels(image, dtype), labels
