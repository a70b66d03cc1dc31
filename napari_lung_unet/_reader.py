"""napari reader contribution for DICOM chest X-rays.

All decoding and validation is :func:`napari_lung_unet.io.read_xray`, shared with the CLI and
the widget; this module only turns an :class:`~napari_lung_unet.io.XRay` into a layer tuple.
PNG/TIFF/JPEG are left to napari's built-in reader (we return ``None`` for them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .io import XRay, is_dicom, read_xray

LayerDataTuple = tuple[Any, dict[str, Any], str]
PathOrPaths = str | Path | Sequence[str | Path]


def napari_get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerDataTuple]] | None:
    """Return :func:`read_dicom` when every path is a DICOM file, else ``None`` (napari tries others)."""
    paths = _as_list(path)
    if not paths or not all(is_dicom(p) for p in paths):
        return None
    return read_dicom


def read_dicom(path: PathOrPaths) -> list[LayerDataTuple]:
    """One image layer per file, scaled in mm when the file gives a pixel spacing.

    A corrupt or unusable file raises :class:`~napari_lung_unet.io.ImageError`; napari shows
    its message, which names the file and the reason.
    """
    return [xray_layer(read_xray(p)) for p in _as_list(path)]


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
