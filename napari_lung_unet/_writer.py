"""napari writer contribution: save a Labels layer as a PNG or TIFF label image, atomically.

The output matches what ``lung-unet predict`` writes (0 background, 1 right lung, 2 left lung),
so a mask corrected in napari can be fed back to the CLI and to training unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .store.atomic import atomic_write, atomic_write_png

PNG_SUFFIXES = (".png",)
TIFF_SUFFIXES = (".tif", ".tiff")


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer: returns the written path, as npe2 expects."""
    target = Path(path)
    labels = _as_label_array(data)
    suffix = target.suffix.lower()
    if suffix in PNG_SUFFIXES:
        atomic_write_png(target, _png_dtype(labels))
    elif suffix in TIFF_SUFFIXES:
        import tifffile

        atomic_write(target, lambda tmp: tifffile.imwrite(tmp, labels, compression="zlib"))
    else:
        raise ValueError(f"{target}: labels can be saved as {', '.join(PNG_SUFFIXES + TIFF_SUFFIXES)}, not {suffix!r}")
    return [str(target)]


def _as_label_array(data: Any) -> np.ndarray:
    if isinstance(data, (list, tuple)):  # multiscale labels: the full-resolution level
        data = data[0]
    labels = np.asarray(data)
    if labels.dtype.kind not in "biu":
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.dtype.kind == "b":
        labels = labels.astype(np.uint8)
    if labels.size and labels.min() < 0:
        raise ValueError(f"labels must be non-negative, got minimum {labels.min()}")
    return labels


def _png_dtype(labels: np.ndarray) -> np.ndarray:
    """PNG holds 8- or 16-bit grey; pick the smallest that fits so masks stay tiny uint8 files."""
    if labels.ndim != 2:
        raise ValueError(f"a PNG holds one 2-D label image, got shape {labels.shape} (save as .tif instead)")
    top = int(labels.max()) if labels.size else 0
    if top <= np.iinfo(np.uint8).max:
        return labels.astype(np.uint8, copy=False)
    if top <= np.iinfo(np.uint16).max:
        return labels.astype(np.uint16, copy=False)
    raise ValueError(f"label value {top} does not fit in a 16-bit PNG (save as .tif instead)")
