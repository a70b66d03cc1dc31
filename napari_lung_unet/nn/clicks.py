"""Where a reviewer clicks, and clicks as network inputs (issue 19).

The simulated reviewer (bench/_reviewer.py) and the learned refiner's training (training/refiner_train.py)
both click the deepest interior point of the largest wrong region: one rule, so the refiner is trained
on the clicks it is measured with.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from scipy import ndimage

EIGHT = np.ones((3, 3), bool)  # 8-connected: a region's diagonal neighbours belong to it
CLICK_RADIUS = 5.0  # px at the model's input size: RITM's disc radius, a few px on a 384² input


def largest_region(wrong: np.ndarray, min_area: float = 0.0) -> np.ndarray | None:
    """The largest 8-connected component of ``wrong``, or None if none reaches ``min_area`` px."""
    labelled, n = ndimage.label(wrong, structure=EIGHT)
    if n == 0:
        return None
    sizes = np.bincount(labelled.ravel())[1:]
    k = int(np.argmax(sizes))
    if sizes[k] < min_area:
        return None
    return labelled == k + 1


def click_point(region: np.ndarray) -> tuple[int, int]:
    """The region's interior point farthest from its edge (the image border counts as an edge)."""
    box = ndimage.find_objects(region.astype(np.uint8))[0]
    depth = ndimage.distance_transform_edt(np.pad(region[box], 1))[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(r) + box[0].start, int(c) + box[1].start


def click_maps(
    clicks: Iterable[tuple[float, float, bool]], shape: tuple[int, int], origin: tuple[int, int] = (0, 0),
    radius: float = CLICK_RADIUS,
) -> torch.Tensor:
    """2×H×W float maps (positive, negative): a disc of ``radius`` px at each click. ``clicks`` are
    (row, col, positive) at the model's resolution; ``origin`` is the crop's top-left corner there."""
    maps = torch.zeros(2, *shape)
    yy = torch.arange(shape[0], dtype=torch.float32)[:, None] + origin[0]
    xx = torch.arange(shape[1], dtype=torch.float32)[None, :] + origin[1]
    for row, col, positive in clicks:
        disc = (yy - row) ** 2 + (xx - col) ** 2 <= radius**2
        maps[0 if positive else 1][disc] = 1.0
    return maps
