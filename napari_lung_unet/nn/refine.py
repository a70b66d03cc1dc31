"""Refine: a click asks for the region around it to be redone, without a second network pass.

A positive click inside lung the proposal missed grows the lung there; a negative click inside
tissue it marked as lung shrinks it. The non-learned baseline is region growing on the model's
log-odds, in a crop around the click at the model's resolution: the clicked pixel joins the
pixels the model finds about as likely as it or more (positive) or as unlikely or less
(negative), connected to it. The log-odds carry what the model half-saw: the lung behind the
heart, which the lung-fields convention leaves out, is faintly more probable than the heart.
Every click of a proposal is remembered and keeps its answer (RITM-style click maps): a pixel
nearer an earlier click of the other sign does not change, so a negative click on a positive
click's overshoot trims it instead of taking it all back.

Where the log-odds are flat (behind the heart) they bound nothing, and a 15 % crop filled as a
square. The click's depth d, its distance to the current mask's edge, now bounds the growth: a wrong
region is about twice as thick as the depth of its deepest point, so growth keeps within 1.5 d of
the current edge and 3 d of the click. With two conventions, a positive click the other one does
not answer grows on the larger of their log-odds: lung either half-sees.

With a model that knows both lung conventions, a click the other convention agrees with takes
the other convention's region around it, over the whole image rather than a crop that cut the
tall region behind the heart, within 4 d of the click: the lung behind the heart that a
lung-fields proposal misses at a whole-lung site is exactly where the two differ, but where the
two differ along a whole edge, all of it is more than was asked.

Measured with bench/correction_effort.py (s/case, refine before -> after this bound; paint):
default-3 (two conventions) covid_v7labs 13.08 -> 12.04 at epoch 3 (paint 13.98), 10.67 at
epoch 5 (paint 13.59); Shenzhen validation 5.81 -> 5.33 at epoch 3, 5.17 at epoch 5 (paint 4.52);
default-2 covid_v7labs 16.97 -> 17.00 (paint 15.30), Shenzhen 5.54 -> 5.32 (paint 4.54). Tried
and worse: no crop at all, reach 5-8 d, filling the lung's medial concavity up to the click's
mirror line (it overshoots below the diaphragm), taking every region where the other convention
adds lung once one click agrees with it. The issue's bar (0.6x paint) is not met; on Shenzhen it
is out of reach of any refiner that fixes only the clicked region: ``--mode oracle`` (each click
fixes its region exactly) costs 2.74 s/case there, 0.60x paint (docs/benchmarks.md).

A random walker (``skimage.segmentation.random_walker``) on the log-odds and the image, seeded
by the click, the current mask and confident pixels, was measured first and fixed more than half
of the clicked region in 2 of 29 covid_v7labs cases, against 18 of 29 for region growing
(docs/benchmarks.md).

Only the clicked piece changes, in the box around it, and hand-painted pixels keep their labels:
the result is a box and the new labels inside it, ready for an undoable ``data_setitem``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ..images.labels import LEFT_LUNG, RIGHT_LUNG
from .preprocess import resize

if TYPE_CHECKING:
    from .predict import Prediction

CROP_FRACTION = 0.15  # the crop's side, of the model's input side (measured 0.15-0.33 on covid_v7labs: smaller leaks less)
LOGIT_CLIP = 8.0
LOGIT_MARGIN = 0.5  # nats below (above) the click's log-odds that still grow with it (measured: 0.5-2)
# The click's depth d: its distance to the current mask's edge (model px). A wrong region is about as
# thick as twice the depth of its deepest point, where the reviewer clicks; growth keeps to that scale.
BAND_DEPTHS = 1.5  # own convention: no deeper than this many d from the current edge (measured 1.5-3)
REACH_DEPTHS = 3.0  # own convention: no farther than this many d from the click (measured 3-8)
OTHER_REACH_DEPTHS = 4.0  # other convention: its region, whole-image, no farther than this many d (measured 3-8)


@dataclass(frozen=True)
class Click:
    row: int  # full-size image coordinates
    col: int
    positive: bool  # True: this is lung that was missed; False: this is not lung


@dataclass
class Refinement:
    box: tuple[slice, slice]  # where labels change, in full-size coordinates
    labels: np.ndarray  # the new uint8 labels inside ``box``


class RefineContext:
    """One proposal's image and probability at the model's resolution, kept for the clicks on it.

    Build it once per proposal (``from_prediction``, ~2 ms); each ``refine`` then touches only a
    crop: the model-resolution crop and the full-size box under it.
    """

    def __init__(
        self, probability: np.ndarray, shape: tuple[int, int], other_probability: np.ndarray | None = None
    ) -> None:
        """``probability``: the model's lung probability at its input size; ``shape``: the image's full size;
        ``other_probability``: the same model's other lung convention, when it knows two."""
        if np.ndim(probability) != 2:
            raise ValueError(f"probability must be 2-D, not {np.shape(probability)}")
        if other_probability is not None and np.shape(other_probability) != np.shape(probability):
            raise ValueError(f"other probability {np.shape(other_probability)} is not {np.shape(probability)}")
        self.logit = _logit(probability)
        self.other = None if other_probability is None else _logit(other_probability)
        self.shape = (int(shape[0]), int(shape[1]))
        self.clicks: list[Click] = []  # this proposal's clicks so far: each keeps its answer

    @classmethod
    def from_prediction(cls, prediction: Prediction, other: Prediction | None = None) -> RefineContext:
        """From the proposal; ``other``: the same image in the model's other convention, if it knows one."""
        return cls(prediction.small_probability, prediction.labels.shape, None if other is None else other.small_probability)

    def refine(
        self, labels: np.ndarray, click: Click,
        painted: np.ndarray | Callable[[tuple[slice, slice]], np.ndarray] | None = None,
    ) -> Refinement:
        """New labels around ``click``; pixels where ``painted`` is True keep their current label.

        ``painted`` is a full-size mask, or a function giving the mask inside a box: the dock
        compares only the box of a 20-Mpx mask with what the model said, not the whole image.
        """
        if labels.shape != self.shape:
            raise ValueError(f"labels {labels.shape} do not match the proposal's image {self.shape}")
        if not (0 <= click.row < self.shape[0] and 0 <= click.col < self.shape[1]):
            raise ValueError(f"click ({click.row}, {click.col}) lies outside the image {self.shape}")
        size = self.logit.shape
        current = sample_labels(labels, size, (slice(0, size[0]), slice(0, size[1]))) > 0
        change = self._grow(current, click)
        self.clicks.append(click)
        return apply_change(change, labels, click, painted)

    def _small(self, click: Click) -> tuple[int, int]:
        return small_of(click, self.logit.shape, self.shape)

    def uses_other(self, click: Click) -> bool:
        """Whether the other convention answers this click: it says lung where a positive click says so
        (or not lung where a negative one does), so its region around the click is the one asked for."""
        if self.other is None:
            return False
        at = float(self.other[self._small(click)])
        return at > 0 if click.positive else at < 0

    def _grow(self, current: np.ndarray, click: Click) -> np.ndarray:
        """The pixels to change at the model's resolution: the click's connected piece of what may change."""
        size = self.logit.shape
        cr, cc = self._small(click)
        # depth: each pixel's distance to the current mask's edge, on the side the click is on
        depth = ndimage.distance_transform_edt(~current if click.positive else current)
        d = max(float(depth[cr, cc]), 1.0)
        yy = np.arange(size[0])[:, None] - cr
        xx = np.arange(size[1])[None, :] - cc
        near = yy * yy + xx * xx
        if self.uses_other(click):
            # the other convention's mask where the current one disagrees with it, over the whole image:
            # a crop cut the region (the lung behind the heart is tall), so the click's depth bounds it instead
            other = self.other >= 0  # type: ignore[operator]
            grown = (other & ~current) if click.positive else (~other & current)
            grown &= near <= (OTHER_REACH_DEPTHS * d) ** 2
        else:
            # hysteresis on the log-odds: what the model finds about as likely as the click's pixel, or more (less)
            # a positive click says lung: what either convention half-sees as lung is evidence of it
            evidence = self.logit if self.other is None or not click.positive else np.maximum(self.logit, self.other)
            at = float(evidence[cr, cc])
            if click.positive:
                grown = (evidence >= min(at, 0.0) - LOGIT_MARGIN) & ~current
            else:
                grown = (evidence <= max(at, 0.0) + LOGIT_MARGIN) & current
            # where the log-odds are flat (behind the heart) they bound nothing: the click's depth does
            grown &= (depth <= BAND_DEPTHS * d) & (near <= (REACH_DEPTHS * d) ** 2)
            half = max(int(size[0] * CROP_FRACTION) // 2, 4)
            window = np.zeros(size, bool)
            r0 = min(max(cr - half, 0), max(size[0] - 2 * half, 0))
            c0 = min(max(cc - half, 0), max(size[1] - 2 * half, 0))
            window[r0 : r0 + 2 * half, c0 : c0 + 2 * half] = True
            grown &= window
        grown &= self._nearer_than_opposite(click, (slice(0, size[0]), slice(0, size[1])), (size[0] / self.shape[0], size[1] / self.shape[1]))
        return piece_at(grown, (cr, cc))

    def _nearer_than_opposite(
        self, click: Click, small_box: tuple[slice, slice], to_small: tuple[float, float]
    ) -> np.ndarray:
        """Crop pixels nearer to ``click`` than to any earlier click of the other sign.

        An earlier click keeps its answer: without this, a negative click on a positive click's
        overshoot would take back the whole grown region, and the next positive click regrow it.
        """
        yy = np.arange(small_box[0].start, small_box[0].stop)[:, None] + 0.5
        xx = np.arange(small_box[1].start, small_box[1].stop)[None, :] + 0.5

        def dist2(c: Click) -> np.ndarray:
            return (yy - c.row * to_small[0]) ** 2 + (xx - c.col * to_small[1]) ** 2

        mine = dist2(click)
        keep = np.ones(mine.shape, bool)
        for other in self.clicks:
            if other.positive != click.positive:
                keep &= mine < dist2(other)
        return keep


def piece_at(mask: np.ndarray, at: tuple[int, int]) -> np.ndarray:
    """The connected piece of ``mask`` that holds ``at``, ``at`` always in it: the clicked pixel takes the
    click's answer, and only what connects to it changes (region growing and the learned refiner alike)."""
    grown = mask.copy()
    grown[at] = True
    pieces, _ = ndimage.label(grown)
    return pieces == pieces[at]


def small_of(click: Click, size: tuple[int, int], shape: tuple[int, int]) -> tuple[int, int]:
    """The click's pixel at the model's resolution ``size`` of an image of ``shape``."""
    return (min(int(click.row * size[0] / shape[0]), size[0] - 1), min(int(click.col * size[1] / shape[1]), size[1] - 1))


def sample_labels(labels: np.ndarray, size: tuple[int, int], small_box: tuple[slice, slice]) -> np.ndarray:
    """Full-size labels at the centres of the model-resolution (``size``) pixels in ``small_box`` (a gather, no resize)."""
    rows = ((np.arange(small_box[0].start, small_box[0].stop) + 0.5) * labels.shape[0] / size[0]).astype(int)
    cols = ((np.arange(small_box[1].start, small_box[1].stop) + 0.5) * labels.shape[1] / size[1]).astype(int)
    return labels[np.ix_(rows, cols)]


def apply_change(
    change: np.ndarray, labels: np.ndarray, click: Click,
    painted: np.ndarray | Callable[[tuple[slice, slice]], np.ndarray] | None = None,
) -> Refinement:
    """The full-size box under ``change`` (a model-resolution mask of the pixels the click changes) and its
    new labels: a positive click adds lung on its side, a negative one removes it; painted pixels stay."""
    return apply_small(change if click.positive else None, None if click.positive else change, labels, click, painted)


def apply_small(
    add: np.ndarray | None, remove: np.ndarray | None, labels: np.ndarray, click: Click,
    painted: np.ndarray | Callable[[tuple[slice, slice]], np.ndarray] | None = None,
) -> Refinement:
    """Model-resolution masks of lung to add and to remove (either may be None), as the full-size box under
    them and its new labels; added lung takes the click's side, painted pixels stay."""
    masks = [m for m in (add, remove) if m is not None]
    change = masks[0] | masks[1] if len(masks) == 2 else masks[0]
    rows, cols = np.flatnonzero(change.any(1)), np.flatnonzero(change.any(0))
    small = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    box = tuple(_at_least_one(int(round(s.start * N / n)), int(round(s.stop * N / n)), N)
                for s, n, N in zip(small, change.shape, labels.shape))
    box = (box[0], box[1])
    crop = labels[box]

    def full(mask: np.ndarray) -> np.ndarray:
        return resize(mask[small].astype(np.float32), (crop.shape[0], crop.shape[1])).numpy() > 0.5

    new = crop.copy()
    if add is not None:
        # the label added lung takes: the click's half of the image (the patient's right is the image's left)
        side = RIGHT_LUNG if click.col < labels.shape[1] / 2 else LEFT_LUNG
        new[full(add) & (crop == 0)] = side
    if remove is not None:
        new[full(remove) & (crop > 0)] = 0
    new = new.astype(np.uint8)
    if painted is not None:
        keep = painted(box) if callable(painted) else painted[box]
        new[keep] = crop[keep]
    return Refinement(box, new)


def _at_least_one(start: int, stop: int, size: int) -> slice:
    """``start:stop``, or one pixel where an image far smaller than the model's input along this axis
    (1×1, 3×100000) rounds the box to nothing: a resize to zero pixels is a torch error, not a refinement."""
    if stop > start:
        return slice(start, stop)
    start = min(start, size - 1)
    return slice(start, start + 1)


def _logit(probability: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probability, np.float64), 1e-6, 1 - 1e-6)
    return np.clip(np.log(p / (1 - p)), -LOGIT_CLIP, LOGIT_CLIP).astype(np.float32)
