"""The simulated reviewer of issue 19: a fixed stroke model, so seconds per case compare across tools.

- The image is shown 900 px tall; the brush has a radius of 12 screen px.
- The reviewer fixes the largest wrong region first: an 8-connected component of proposal XOR truth.
  They stop at Dice >= target, never paint a region smaller than a quarter of the brush disc, and stop
  after 60 interactions (strokes and clicks together).
- Looking at a case and accepting it costs 2 s. A painted region costs one stroke: 1 s to aim plus a
  path of max(area / brush width, skeleton length) screen px at 250 px/s; it is then fixed exactly.
- Refine mode: a click costs 1 s plus the measured time until the refined mask is ready. It goes to
  the interior point of the largest wrong region farthest from that region's edge, positive where
  lung was missed, negative where extra was marked. If the click leaves more than half of that region
  wrong, the reviewer paints it at the stroke's cost. One point per interaction is all the truth gives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from napari_lung_unet.images.labels import LEFT_LUNG, RIGHT_LUNG
from napari_lung_unet.nn.clicks import click_point, largest_region

SCREEN_HEIGHT = 900.0  # screen px the image is shown at
BRUSH_RADIUS = 12.0  # screen px
LOOK_AND_ACCEPT_S = 2.0
AIM_S = 1.0
PATH_SPEED = 250.0  # screen px per second
MAX_INTERACTIONS = 60

# (click row, click col, positive, current labels, hand-painted pixels) -> refined labels
Refiner = Callable[[int, int, bool, np.ndarray, np.ndarray], np.ndarray]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


@dataclass
class CaseEffort:
    seconds: float
    strokes: int
    clicks: int
    dice_before: float
    dice_after: float
    reached: bool
    refine_ms: list[float]

    @property
    def untouched(self) -> bool:
        return self.strokes == 0 and self.clicks == 0


class Screen:
    """Image px -> screen px for one image shown 900 px tall."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.scale = SCREEN_HEIGHT / shape[0]  # screen px per image px
        brush_px = BRUSH_RADIUS / self.scale  # brush radius in image px
        self.min_region = 0.25 * np.pi * brush_px**2  # a quarter of the brush disc, in image px

    def stroke_seconds(self, region: np.ndarray) -> float:
        """1 s to aim + max(area / brush width, skeleton length) screen px at 250 px/s."""
        area = float(region.sum()) * self.scale**2
        box = ndimage.find_objects(region.astype(np.uint8))[0]
        skeleton = float(skeletonize(region[box]).sum()) * self.scale
        return AIM_S + max(area / (2.0 * BRUSH_RADIUS), skeleton) / PATH_SPEED


def review(proposal: np.ndarray, truth: np.ndarray, target: float, refiner: Refiner | None = None) -> CaseEffort:
    """Correct ``proposal`` (labels, > 0 is lung) toward ``truth`` as the stroke model says; with ``refiner``, click first."""
    screen = Screen(truth.shape)
    labels, painted = proposal.copy(), np.zeros(truth.shape, bool)
    seconds, strokes, clicks, refine_ms = LOOK_AND_ACCEPT_S, 0, 0, []
    before = dice(labels > 0, truth)
    while dice(labels > 0, truth) < target and strokes + clicks < MAX_INTERACTIONS:
        region = largest_region((labels > 0) ^ truth, screen.min_region)
        if region is None:
            break
        if refiner is not None:
            r, c = click_point(region)
            t0 = time.perf_counter()
            labels = refiner(r, c, bool(truth[r, c]), labels, painted)
            elapsed = time.perf_counter() - t0
            refine_ms.append(1000.0 * elapsed)
            seconds += AIM_S + elapsed
            clicks += 1
            if int(((labels[region] > 0) != truth[region]).sum()) <= region.sum() / 2:
                continue
        seconds += screen.stroke_seconds(region)
        strokes += 1
        paint(labels, region, truth)
        painted |= region
    after = dice(labels > 0, truth)
    return CaseEffort(seconds, strokes, clicks, before, after, after >= target, refine_ms)


def paint(labels: np.ndarray, region: np.ndarray, truth: np.ndarray) -> None:
    """Fix ``region`` exactly; painted lung takes the label of its side (the patient's right is the image's left)."""
    cols = np.arange(labels.shape[1])[None, :]
    side = np.where(cols < labels.shape[1] / 2, RIGHT_LUNG, LEFT_LUNG).astype(labels.dtype)
    labels[region & ~truth] = 0
    add = region & truth
    labels[add] = np.broadcast_to(side, labels.shape)[add]
