"""Refine with a learned refiner (issue 19, RITM-style): a network that sees the image, the current mask
and the clicks, and redraws the region around the last click.

The refiner is the U-Net with four inputs (image, current mask, positive-click discs, negative-click
discs) warm-started from a segmentation model (:func:`refiner_from_parent`: the new inputs' weights
start at zero, so it begins as its parent) and trained with simulated clicks (training/refiner_train.py).
It keeps its parent's conventions: the output it draws is the proposal's convention.

Each click runs it once on a ``crop``-px square around the click at the model's resolution (a fraction
of a whole-image pass); only the changed pixels connected to the click change, in the full-size box
under them, and hand-painted pixels keep their labels: the same contract as
:meth:`napari_lung_unet.nn.refine.RefineContext.refine`, so the dock's worker could build either.

A refiner trained on the clicked side (card ``extra.window == "side"``, issue 30) sees the whole half
of the image the click is on, full height, and redraws the whole lung there: a click in the missed
lung behind the heart means "the region you left out there", and the lung's other wrong pieces on
that side go with it. Its redraw is merged only where it differs from the current mask, in pieces
of at least ``MIN_CHANGE`` px (and the clicked pixel, which always takes the click's answer), so
the rest of the mask, and painting, stay as they are (:func:`redrawn`).

Measured (docs/benchmarks.md, bench/correction_effort.py --refiner): refiner-1 (32 min on 2 cores) costs
11.60 s/case on covid_v7labs against region growing's 10.16 (paint 13.56), 5.03 on Shenzhen validation
against 5.34 (paint 4.50): it does not replace region growing, which stays the dock's refiner. refiner-h
(the clicked side, iterative clicks; 100 steps on a third of a core), signed with the thin cut: covid_v7labs
whole-lung 10.88 against region growing's 8.70 (paint 7.08), Shenzhen 5.49 against 5.34 (docs/benchmarks.md, issue 30). A click
takes ~40-50 ms on a 20-Mpx image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from scipy import ndimage

from .clicks import EIGHT, click_maps
from .model import UNet
from .model_io import LoadedModel
from .preprocess import prepare_input
from .refine import Click, RefineContext, Refinement, apply_change, apply_small, piece_at, sample_labels, small_of

if TYPE_CHECKING:
    from ..images.read import XRay
    from .predict import Prediction

REFINER_INPUTS = 4  # image, current mask, positive clicks, negative clicks
DEFAULT_CROP = 192  # px at the model's input size (384): half its side
SIDE_OVERLAP = 16  # px at the input size past the midline: a lung that crosses it a little is still seen whole
MIN_CHANGE = 20  # px at the input size: a redraw's smaller differences are its noise, not a fix
THIN = 5  # px at the input size: a difference thinner than this is a border that moved, not a fix


def is_refiner(loaded: LoadedModel) -> bool:
    return loaded.card.architecture.in_channels == REFINER_INPUTS and bool(loaded.card.extra.get("refiner"))


def refiner_from_parent(parent: LoadedModel) -> UNet:
    """A refiner that starts as ``parent``: its first convolution takes three more inputs, with zero weights."""
    arch = parent.card.architecture
    if arch.in_channels != 1:
        raise ValueError(f"model {parent.card.version} takes {arch.in_channels} inputs; a refiner's parent takes the image alone")
    state = dict(parent.model.state_dict())
    first = "encoders.0.0.weight"
    w = state[first]
    state[first] = torch.cat([w, torch.zeros(w.shape[0], REFINER_INPUTS - 1, *w.shape[2:], dtype=w.dtype)], 1)
    model = UNet(replace(arch, in_channels=REFINER_INPUTS))
    model.load_state_dict(state, strict=True)
    return model.eval()


def crop_at(center: tuple[int, int], size: tuple[int, int], side: int) -> tuple[slice, slice]:
    """A ``side``² box at the model's resolution around ``center``, moved inside the image."""
    side = min(side, size[0], size[1])
    r0 = min(max(center[0] - side // 2, 0), size[0] - side)
    c0 = min(max(center[1] - side // 2, 0), size[1] - side)
    return slice(r0, r0 + side), slice(c0, c0 + side)


def side_window(col: int, size: tuple[int, int], overlap: int = SIDE_OVERLAP) -> tuple[slice, slice]:
    """The clicked side at the model's resolution: full height, half the width and ``overlap`` past the
    midline, rounded up to a multiple of 16 px (the U-Net's four halvings)."""
    width = min(size[1], -(-(size[1] // 2 + overlap) // 16) * 16)
    start = 0 if col < size[1] / 2 else size[1] - width
    return slice(0, size[0]), slice(start, start + width)


def redrawn(drawn: np.ndarray, current: np.ndarray, at: tuple[int, int], positive: bool, signed: bool = False) -> np.ndarray:
    """``current`` with the redraw ``drawn`` merged where it differs: in pieces of at least ``MIN_CHANGE`` px
    once thinner than ``THIN`` px is cut away (a redraw's border that moved by a pixel or two along the whole
    lung is its noise, not a fix) and the click's own piece, whose pixel takes the click's answer (lung for
    a positive click); ``signed``: only the click's kind of change (a positive click adds lung, never removes it)."""
    want = drawn.copy()
    want[at] = positive
    differs = want != current
    if signed:
        differs &= want if positive else ~want
    core = ndimage.binary_opening(differs, structure=np.ones((THIN, THIN), bool))
    pieces, _ = ndimage.label(core, structure=EIGHT)
    keep = np.bincount(pieces.ravel()) >= MIN_CHANGE
    keep[0] = False
    merged = keep[pieces]
    if not merged[at]:  # the click's own piece is always taken, thin or small (a narrow missed sliver)
        merged |= piece_at(differs, at)
    return np.where(merged, want, current)


class LearnedRefineContext:
    """One proposal's image at the refiner's input size, its convention and its clicks so far."""

    def __init__(
        self, refiner: LoadedModel, image: torch.Tensor, shape: tuple[int, int], convention: str, crop: int | None = None,
        heuristic: RefineContext | None = None,
    ) -> None:
        """``image``: the normalised image at the refiner's input size; ``shape``: the image's full size;
        ``crop``: the window's side at that size (default: the one the refiner was trained on);
        ``heuristic``: a region-growing context of the same proposal that knows the other convention:
        a click that convention agrees with takes its region (the baseline's best rule), the rest the refiner's."""
        if not is_refiner(refiner):
            raise ValueError(f"model {refiner.card.version} is not a refiner (a card with extra.refiner and 4 inputs)")
        if tuple(image.shape) != (refiner.card.input_size,) * 2:
            raise ValueError(f"image {tuple(image.shape)} is not the refiner's input size {refiner.card.input_size}²")
        self.model = refiner.model.eval()
        self.output = refiner.card.output_for(convention)  # a refiner without the proposal's convention refuses by name
        self.threshold = refiner.card.threshold
        self.image = image
        self.shape = (int(shape[0]), int(shape[1]))
        self.crop = int(crop or refiner.card.extra.get("crop", DEFAULT_CROP))
        self.side = refiner.card.extra.get("window") == "side"  # issue 30: redraws the clicked side
        self.signed = refiner.card.extra.get("merge") == "signed"  # ...and merges only the click's kind of change
        self.clicks: list[Click] = []  # every click keeps speaking to the refiner (RITM's click maps)
        self.heuristic = heuristic

    @classmethod
    def from_prediction(
        cls, refiner: LoadedModel, prediction: Prediction, image: np.ndarray | XRay, crop: int | None = None,
        other: Prediction | None = None,
    ) -> LearnedRefineContext:
        """From the proposal and its image (full size; resized once here, not per click); ``other``: the
        proposing model's other convention, for the clicks it agrees with (``heuristic`` above)."""
        pixels = image if isinstance(image, np.ndarray) else image.pixels
        small = prepare_input(pixels, refiner.card.input_size, refiner.card.normalisation)
        heuristic = None if other is None else RefineContext.from_prediction(prediction, other)
        return cls(refiner, small, prediction.labels.shape, prediction.convention, crop, heuristic)

    def refine(
        self, labels: np.ndarray, click: Click,
        painted: np.ndarray | Callable[[tuple[slice, slice]], np.ndarray] | None = None,
    ) -> Refinement:
        """New labels around ``click``; pixels where ``painted`` is True keep their current label."""
        if labels.shape != self.shape:
            raise ValueError(f"labels {labels.shape} do not match the proposal's image {self.shape}")
        if not (0 <= click.row < self.shape[0] and 0 <= click.col < self.shape[1]):
            raise ValueError(f"click ({click.row}, {click.col}) lies outside the image {self.shape}")
        self.clicks.append(click)
        if self.heuristic is not None:
            if self.heuristic.uses_other(click):
                return self.heuristic.refine(labels, click, painted)
            self.heuristic.clicks.append(click)  # it remembers every click, as when it answers them all
        size = (int(self.image.shape[0]), int(self.image.shape[1]))
        cr, cc = small_of(click, size, self.shape)
        if self.side:
            box = side_window(cc, size)
            current = sample_labels(labels, size, box) > 0
            at = (cr - box[0].start, cc - box[1].start)
            new = redrawn(self._draw(box, current), current, at, click.positive, self.signed)
            add, remove = np.zeros(size, bool), np.zeros(size, bool)
            add[box], remove[box] = new & ~current, ~new & current
            add[cr, cc] |= click.positive  # the clicked pixel bounds the box even where nothing changes
            remove[cr, cc] |= not click.positive
            return apply_small(add, remove, labels, click, painted)
        box = crop_at((cr, cc), size, self.crop)
        current = sample_labels(labels, size, box) > 0
        drawn = self._draw(box, current)
        grown = (drawn & ~current) if click.positive else (~drawn & current)
        change = np.zeros(size, bool)
        change[box] = piece_at(grown, (cr - box[0].start, cc - box[1].start))
        return apply_change(change, labels, click, painted)

    @torch.inference_mode()
    def _draw(self, box: tuple[slice, slice], current: np.ndarray) -> np.ndarray:
        """The refiner's lung mask inside ``box`` given the current mask and every click so far."""
        size = (int(self.image.shape[0]), int(self.image.shape[1]))
        # at the model's resolution, the same pixels training clicked
        clicks = [(*small_of(c, size, self.shape), c.positive) for c in self.clicks]
        maps = click_maps(clicks, current.shape, (box[0].start, box[1].start))
        x = torch.cat([self.image[box][None], torch.from_numpy(current.astype(np.float32))[None], maps])[None]
        logits = self.model(x, torch.tensor([self.output]))[0, self.output]
        return (torch.sigmoid(logits) > self.threshold).numpy()
