"""The proposal work that runs in a napari ``thread_worker``: no Qt, no layers.

Predictors are cached per (model folder, weights mtime, device) because loading and moving a
model to a GPU costs far more than one inference; a replaced weights file gets a fresh entry.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Generator

import numpy as np

from ..images.read import ImageError, XRay, to_grey
from ..nn.card import WEIGHTS_NAME
from ..nn.device import resolve_device
from ..nn.model_io import load_model
from ..nn.predict import Predictor
from ..nn.registry import Registry
from . import strings
from .quality_hint import quality_hint
from .state import ProposalRequest, ProposalResult

_CACHE_SIZE = 2  # the current model and one alternative; each can be hundreds of MB on a GPU
_cache: OrderedDict[tuple[str, int, str, str | None], Predictor] = OrderedDict()
_cache_lock = threading.Lock()


def get_predictor(model: str | None, device: str, convention: str | None = None) -> Predictor:
    """A cached :class:`Predictor` for a registry version or path (None = current version).

    ``convention``: the lung convention asked for (None: the model's own), for models that take one.
    """
    folder = Registry().resolve(model or None)
    resolved = str(resolve_device(device))
    key = (str(folder.resolve()), (folder / WEIGHTS_NAME).stat().st_mtime_ns, resolved, convention)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    extra = {"convention": convention} if convention is not None else {}
    predictor = Predictor(load_model(folder), device=resolved, **extra)  # outside the lock: slow
    with _cache_lock:
        _cache[key] = predictor
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return predictor


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def grey_image(request: ProposalRequest) -> np.ndarray:
    """The layer data as a validated 2-D grey image (raises :class:`ImageError` with the reason)."""
    data = np.asarray(request.image)
    if not request.rgb and data.ndim == 3 and data.shape[-1] in (2, 3, 4):
        # to_grey would read a trailing axis of 2-4 as alpha/colour; napari knows this layer is not
        raise ImageError(
            f"layer '{request.layer_name}' is a 3-D stack of shape {data.shape}; "
            "a single 2-D radiograph is needed (pick one slice)"
        )
    try:
        return to_grey(data)
    except ImageError as exc:
        raise ImageError(f"layer '{request.layer_name}': {exc}") from None


def _warm_lazy_imports() -> None:
    """Import here what napari imports lazily when the first Labels layer is made (pandas, ~0.5 s).

    In this worker thread the import shares the GIL in small slices; on the GUI thread, inside
    ``add_labels``, it would freeze the viewer for its whole duration.
    """
    import pandas  # noqa: F401


def run_proposal(request: ProposalRequest) -> Generator[str, None, ProposalResult]:
    """Worker body: yields status lines for the GUI, returns the result (or raises)."""
    start = time.perf_counter()
    _warm_lazy_imports()
    image = grey_image(request)  # fail fast on a bad layer before paying for the model
    yield strings.STATUS_LOADING.format(model=strings.short_name(request.model or "current"), device=request.device)
    predictor = get_predictor(request.model, request.device, request.convention)
    yield strings.STATUS_PREDICTING.format(version=strings.short_name(predictor.version), device=predictor.device)
    prediction = predictor.predict(XRay(image))  # already grey and checked: not converted twice
    hint = quality_hint(prediction)  # a few ms at the network's size, here on the worker
    return ProposalResult(
        prediction=prediction,
        device=str(predictor.device),
        seconds=time.perf_counter() - start,
        case_id=request.case_id,
        worklist=request.worklist,
        image_id=request.image_id,
        token=request.token,
        generation=request.generation,
        place=hint.place,
        heat=hint.heat,
    )
