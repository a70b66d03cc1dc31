"""napari reader contribution for DICOM chest X-rays and their lung Segmentations (``.seg.dcm``).

All decoding and validation is :func:`napari_lung_unet.images.read.read_xray` (shared with the CLI and
the widget) and :func:`napari_lung_unet.dicom.seg.read_seg`; this module only turns their
results into layer tuples. A SEG opens as a Labels layer with its source's pixel spacing as
scale, so it lies exactly over the source X-ray opened by the same reader.
PNG/TIFF/JPEG are left to napari's built-in reader (we return ``None`` for them).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .images.read import XRay, is_dicom, read_xray

LayerDataTuple = tuple[Any, dict[str, Any], str]
PathOrPaths = str | Path | Sequence[str | Path]


def napari_get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerDataTuple]] | None:
    """Return :func:`read_dicom` when every path is a DICOM file, else ``None`` (napari tries others)."""
    paths = _as_list(path)
    if not paths or not all(is_dicom(p) for p in paths):
        return None
    return read_dicom


def read_dicom(path: PathOrPaths) -> list[LayerDataTuple]:
    """One layer per file: an image scaled in mm when the file gives a pixel spacing, or labels for a SEG.

    A corrupt or unusable file raises :class:`~napari_lung_unet.images.read.ImageError`; napari shows
    its message, which names the file and the reason.
    """
    from .dicom.seg import is_seg

    return [seg_layer(p) if is_seg(p) else xray_layer(_read_noting(p)) for p in _as_list(path)]


def _read_noting(path: Path) -> XRay:
    """read_xray, with its notes (a damaged spacing dropped) as warnings: napari shows them to the user."""
    xray = read_xray(path)
    for note in xray.notes:
        warnings.warn(note, stacklevel=2)
    return xray


def seg_layer(path: Path) -> LayerDataTuple:
    """The napari labels-layer tuple for a lung DICOM SEG (0 background, 1 right lung, 2 left lung)."""
    from .dicom.seg import read_seg, seg_convention
    from .images.labels import NAPARI_COLORMAP

    labels, spacing, source_uid = read_seg(path)
    name = path.name[: -len(".seg.dcm")] if path.name.lower().endswith(".seg.dcm") else path.stem
    meta = {
        "name": f"lungs ({name})",
        "scale": spacing or (1.0, 1.0),
        "colormap": NAPARI_COLORMAP,
        "opacity": 0.5,
        "metadata": {
            "spacing_mm": spacing, "source_path": str(path), "source_sop_instance_uid": source_uid,
            "convention": seg_convention(path),  # the lung convention the SEG says it is drawn in; None: not said
        },
    }
    return (labels, meta, "labels")


def xray_layer(xray: XRay) -> LayerDataTuple:
    """The napari image-layer tuple for a read X-ray (also useful to other widgets)."""
    name = xray.path.stem if xray.path is not None else "x-ray"
    meta = {
        "name": name,
        "scale": xray.scale,
        "colormap": "gray",
        "metadata": {
            "spacing_mm": xray.spacing,
            "source_path": str(xray.path) if xray.path is not None else None,
        },
    }
    return (xray.pixels, meta, "image")


def _as_list(path: PathOrPaths) -> list[Path]:
    if isinstance(path, (str, Path)):
        return [Path(path)]
    return [Path(p) for p in path]
