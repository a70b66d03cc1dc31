"""Features of a probability map that the shipped estimator does not use, for the quality benches to try.

Shape and doubt measures of the mask the product draws (``clean_mask(p > 0.5)``) at the network's size:
the atlas RCA against the shipped CC BY reference masks, shape plausibility, and eleven more (per-lung
doubt along the edge, solidity, the lungs' heights, stray and outside mass, components, the mean
probability inside, edge jaggedness). bench/quality_candidates.py scores them against the true Dice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_lung_unet.nn.postprocess import clean_mask
from napari_lung_unet.nn.preprocess import resize

REFERENCE = Path(__file__).resolve().parents[1] / "napari_lung_unet" / "reference"
ATLAS_SIZE = 64
LOGGED = ("lung_unsure_max", "spurious", "outside_mass")  # seen as log(x + 1e-4), like the shipped features


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def boxed(mask: np.ndarray) -> np.ndarray:
    """The mask cropped to its bounding box and resized to ATLAS_SIZE² (shape only, no position or size)."""
    rows, cols = np.nonzero(mask)
    if not len(rows):
        return np.zeros((ATLAS_SIZE, ATLAS_SIZE), bool)
    crop = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(np.float32)
    return resize(crop, (ATLAS_SIZE, ATLAS_SIZE)).numpy() > 0.5


def atlas() -> dict[str, list[np.ndarray]]:
    """The shipped reference masks of each convention, boxed."""
    import imageio.v3 as iio

    return {c: [boxed(np.asarray(iio.imread(f)) > 0) for f in sorted((REFERENCE / c).glob("*.png"))]
            for c in ("lung-fields", "whole-lung")}


def solidity(mask: np.ndarray) -> float:
    from skimage.morphology import convex_hull_image

    return np.count_nonzero(mask) / max(np.count_nonzero(convex_hull_image(mask)), 1) if mask.any() else 0.0


def shape(labels: np.ndarray) -> list[float]:
    """Shape plausibility: solidity (mean, worst lung), the lungs' area ratio, area, component count."""
    lungs = [labels == k for k in (1, 2) if np.any(labels == k)]
    solid = [solidity(m) for m in lungs] or [0.0]
    areas = sorted(np.count_nonzero(m) for m in lungs) + [0, 0]
    return [float(np.mean(solid)), float(min(solid)), areas[0] / max(areas[-3], 1) if len(lungs) == 2 else 0.0,
            np.count_nonzero(labels) / labels.size, float(ndimage.label(labels > 0)[1])]


EXTRA_NAMES = ("lung_unsure_max", "solidity_min", "solidity_mean", "height_ratio", "spurious", "components",
               "inside_conf", "outside_mass", "jagged", "atlas")


def extra_features(prob: np.ndarray, convention: str, references: dict[str, list[np.ndarray]]) -> list[float]:
    """EXTRA_NAMES of one probability map at the network's size (logs where LOGGED says so)."""
    p = np.asarray(prob, dtype=np.float32)
    labels = clean_mask(p > 0.5)
    raw = p > 0.5
    area = max(np.count_nonzero(labels), 1)
    doubt = np.minimum(p, 1.0 - p)
    edge_doubt, solid, heights = [], [], []
    for k in (1, 2):
        lung = labels == k
        ring = ndimage.binary_dilation(lung, iterations=3) & ~ndimage.binary_erosion(lung, iterations=3)
        edge_doubt.append(doubt[ring].sum() / max(np.count_nonzero(lung), 1))
        solid.append(solidity(lung))
        heights.append(int(np.count_nonzero(lung.any(1))))
    inside = labels > 0
    values = {
        "lung_unsure_max": max(edge_doubt), "solidity_min": min(solid), "solidity_mean": float(np.mean(solid)),
        "height_ratio": min(heights) / max(max(heights), 1), "spurious": np.count_nonzero(raw & ~inside) / area,
        "components": float(ndimage.label(raw)[1]), "inside_conf": float(p[inside].mean()) if inside.any() else 0.0,
        "outside_mass": float(p[~inside].sum()) / area,
        "jagged": float(np.count_nonzero(inside ^ ndimage.binary_erosion(inside))) / np.sqrt(area),
        "atlas": max(dice(boxed(inside), ref) for ref in references[convention]),
    }
    return [float(np.log(values[n] + 1e-4)) if n in LOGGED else float(values[n]) for n in EXTRA_NAMES]
