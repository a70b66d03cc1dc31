"""The refine work that runs in a napari ``thread_worker``: no Qt, no layers.

One click's refine costs ~27 ms on a 20-Mpx X-ray (bench/refine_latency.py), but the first click
on a mask that was opened from the worklist's cache (no Prediction kept) or proposed by a model
that knows two lung conventions (the other convention's prediction) runs the network first:
hundreds of ms. Both run here, off the GUI thread; the GUI thread only writes the answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..images.conventions import NAMES
from ..images.read import XRay
from ..nn.predict import Prediction, Predictor
from ..nn.refine import Click, RefineContext
from .engine import get_predictor, grey_image
from .model_mask import Indices, ModelMask
from .state import ProposalRequest


@dataclass
class RefineSource:
    """One image's mask as the model gave it, and what refining it needs (built on the GUI thread)."""

    image_id: str
    proposal: np.ndarray | None  # the labels the model proposed (the state's own array: compared by identity)
    prediction: Prediction | None  # from the proposal step; None: opened from the cache, predicted on the first click
    request: ProposalRequest  # the image, model (the one that proposed), device and convention, should the model run
    fallback_model: str | None = None  # the dock's pick, if the proposing version is not in the registry (a typed path)
    context: RefineContext | None = None  # built on the first click, kept for the next ones (it remembers clicks)
    said: ModelMask | None = None
    other_known: bool = field(default=False)  # whether the other convention was asked of the model
    clicks: list[Click] = field(default_factory=list)  # the clicks written, in order (the marks show those the mask holds)


@dataclass(frozen=True)
class RefineAnswer:
    source: RefineSource
    click: Click
    layer_id: str
    indices: Indices  # the pixels the refine changes, full-size
    values: np.ndarray  # their new labels
    before: np.ndarray  # their labels in the snapshot it worked on: it is merged only where they still hold
    seconds: float


def prepare(source: RefineSource) -> None:
    """The context for the source's clicks: its prediction (run now if not kept) and, for a model that
    knows two conventions, the other one's (a positive click where it says lung takes its region)."""
    request = source.request
    predictor = None
    if source.prediction is None:
        predictor = _predictor(source)
        source.prediction = predictor.predict(XRay(grey_image(request)))
    prediction = source.prediction
    other = None
    if not source.other_known:
        predictor = predictor or _predictor(source)
        known = [name for name in NAMES if name in predictor.card.conventions and name != prediction.convention]
        if known:
            other = predictor.for_convention(known[0]).predict(XRay(grey_image(request)))
        source.other_known = True
    source.context = RefineContext.from_prediction(prediction, other)
    if source.said is None:
        source.said = ModelMask(source.proposal if source.proposal is not None else prediction.labels)


def _predictor(source: RefineSource) -> Predictor:
    request = source.request
    try:
        return get_predictor(request.model, request.device, request.convention)
    except ValueError:  # the proposing version is gone or was a path: the dock's pick proposes the same way
        return get_predictor(source.fallback_model, request.device, request.convention)


def run_refine(source: RefineSource, click: Click, labels: np.ndarray, layer_id: str,
               said: np.ndarray | None = None) -> RefineAnswer:
    """Worker body: the pixels one click changes (hand-painted ones never among them).

    ``labels`` is a snapshot of the mask taken on the GUI thread when the click's turn came, and
    ``said`` a snapshot of what the model said (undo changes the live one on the GUI thread): the
    brush and undo go on while this runs, and never on the arrays it reads.
    """
    start = time.perf_counter()
    if source.context is None:
        prepare(source)
    assert source.context is not None and source.said is not None
    said_now = said if said is not None else source.said.said
    if said_now.shape != np.shape(labels):
        raise ValueError(f"the mask {np.shape(labels)} is not the proposal's image {said_now.shape}; propose again")
    refinement = source.context.refine(labels, click, painted=lambda box: np.asarray(labels[box]) != said_now[box])
    box = refinement.box
    before_box = np.asarray(labels[box])
    rows, cols = np.nonzero(refinement.labels != before_box)
    values = refinement.labels[rows, cols]
    indices = (rows + box[0].start, cols + box[1].start)
    return RefineAnswer(source, click, layer_id, indices, values, before_box[rows, cols], time.perf_counter() - start)
