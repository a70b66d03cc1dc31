"""Plain data passed between the widget (GUI thread) and the proposal worker (background thread).

Nothing here imports Qt or napari, so the worker side can be tested and reused without a viewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..nn.predict import Prediction


@dataclass(frozen=True)
class ProposalRequest:
    """Everything the worker needs, captured on the GUI thread so the worker never reads a layer."""

    image: Any  # the layer's array-like data (numpy, dask, ...); materialised in the worker
    rgb: bool
    layer_name: str  # names the layer in an error message
    model: str | None  # registry version, path, or None for the current version
    device: str
    convention: str | None = None  # the worklist's lung convention; None: the model's own
    case_id: str | None = None  # the worklist case this proposal is for (it may be closed by the time it returns)
    worklist: str | None = None  # that case's worklist folder: another worklist may have a case of the same name
    image_id: str = ""  # the image layer's unique_id: the proposal goes into that image's own mask only
    token: int | None = None  # the case it was asked for (None: not a worklist case); a stale one is dropped
    generation: int = 0  # the image's mask generation when it was asked; a mask changed since is not replaced


@dataclass(frozen=True)
class ProposalResult:
    prediction: Prediction
    device: str  # the resolved device, e.g. "cpu" when "auto" was asked for
    seconds: float  # model loading (if not cached) + inference
    case_id: str | None = None  # copied from the request
    worklist: str | None = None  # copied from the request
    image_id: str = ""  # copied from the request
    token: int | None = None  # copied from the request
    generation: int = 0  # copied from the request
    place: str = ""  # where the model was unsure, e.g. "the lower left lung" (widget/quality_hint.py)
    heat: Any = None  # the doubt map at the network's size (QualityHint.heat), for the dock's overlay

    @property
    def labels(self) -> Any:
        return self.prediction.labels

    @property
    def model_version(self) -> str:
        return self.prediction.model_version
