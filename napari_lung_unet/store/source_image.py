"""What the corrections store keeps of an accepted image: the source's pixels as read, never a rescaled copy.

Every accept, from a worklist or from an image opened on its own, goes through :func:`stored_image`:

- a DICOM file is kept whole (its bytes: pixels, LUTs, spacing and UIDs as the archive sent them);
- any other file is kept as the pixels its reader decodes, in their own type: PNG where PNG holds
  them exactly (grey uint8/uint16, RGB(A) uint8), else a zlib TIFF (float, signed, 16-bit colour);
- pixels with no file behind them (a napari layer made in Python) are kept the same way.

The record's ``image_sha256`` is the sha256 of those pixels, so it equals what
:func:`napari_lung_unet.images.read.read_source_pixels` gives for the source file and for the
stored file alike. The grey conversion and the model's normalisation are applied when the image
is used (``read_xray`` + ``prepare_input``), never baked into what is stored.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..images.read import is_dicom, read_source_pixels, to_grey
from .atomic import encode_png

STORED_SUFFIXES = (".png", ".tif", ".dcm")


@dataclass(frozen=True)
class StoredImage:
    data: bytes  # the file the store writes
    suffix: str  # one of STORED_SUFFIXES
    pixels_sha256: str  # sha256 of the pixels as read from the source (and from the stored file)
    shape: tuple[int, int]  # the grey image's shape: the shape the labels must have


def sha256_of(array: np.ndarray) -> str:
    """sha256 of an array's pixels in memory order (a 1-bit image as 0/1 bytes, however its decoder stored True)."""
    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.view(np.uint8) != 0
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def stored_image(image: np.ndarray | str | Path) -> StoredImage:
    """The stored form of a source file (a path) or of pixels with no file behind them (an array).

    Raises :class:`~napari_lung_unet.images.read.ImageError` for a source that no longer reads.
    """
    if isinstance(image, (str, Path)):
        path = Path(image)
        data = path.read_bytes() if is_dicom(path) else None  # read first: the pixels hashed are these bytes'
        raw = read_source_pixels(path)
        data, suffix = (data, ".dcm") if data is not None else encode_pixels(raw)
    else:
        raw = np.asarray(image)
        data, suffix = encode_pixels(raw)
    return StoredImage(data, suffix, sha256_of(raw), tuple(to_grey(raw).shape))  # type: ignore[arg-type]


def encode_pixels(raw: np.ndarray) -> tuple[bytes, str]:
    """Lossless file bytes for ``raw`` in its own type, and their suffix."""
    grey_png = raw.ndim == 2 and raw.dtype in (np.uint8, np.uint16)
    colour_png = raw.ndim == 3 and raw.shape[-1] in (3, 4) and raw.dtype == np.uint8
    if grey_png or colour_png:
        return encode_png(raw), ".png"
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.ascontiguousarray(raw), compression="zlib")
    return buffer.getvalue(), ".tif"
