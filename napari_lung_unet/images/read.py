"""Read chest X-rays (PNG/TIFF/JPEG/DICOM) into one validated 2-D grey float image.

One function, :func:`read_xray`, serves the napari reader, the widget and the CLI, so every
entry point accepts and rejects exactly the same files with the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import (  # noqa: F401  (re-exported: the readers' one error type and pixel budget)
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    ImageError,
    _short,
    check_pixel_budget,
    max_pixels,
)

if TYPE_CHECKING:  # Pillow loads lazily, only for raster files
    import PIL.Image

MIN_SIDE = 32
RASTER_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
DICOM_SUFFIXES = (".dcm", ".dicom")
IMAGE_SUFFIXES = RASTER_SUFFIXES + DICOM_SUFFIXES


@dataclass
class XRay:
    pixels: np.ndarray  # 2-D float32, original intensities (after DICOM LUTs)
    spacing: tuple[float, float] | None = None  # (row, col) in mm, when the file says so
    path: Path | None = None
    notes: tuple[str, ...] = ()  # what was read around (a damaged spacing or VOI), one line each, naming the file
    colour: bool = False  # the file held colour, converted to grey (the dock says so)

    @property
    def scale(self) -> tuple[float, float]:
        """napari layer scale: mm per pixel when known, else 1 pixel per unit."""
        return self.spacing or (1.0, 1.0)


def is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if path.suffix:  # only sniff extension-less files; cheap and avoids misreading PNGs
        return False
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def read_xray(path: str | Path) -> XRay:
    path = Path(path)
    notes: list[str] = []
    pixels, spacing = _read_pixels(path, notes)
    try:
        grey = to_grey(pixels)
    except ImageError as exc:
        raise ImageError(f"{path}: {exc}") from None
    colour = pixels.ndim == 3 and pixels.shape[-1] in (3, 4)
    return XRay(pixels=grey, spacing=spacing, path=path, notes=tuple(notes), colour=colour)


def read_source_pixels(path: str | Path) -> np.ndarray:
    """The file's pixels as its decoder gives them (DICOM: after its LUTs), before any grey conversion.

    What the corrections store keeps and hashes (store/source_image.py); ``read_xray`` is
    :func:`to_grey` of exactly these pixels.
    """
    return _read_pixels(Path(path))[0]


def _read_pixels(path: Path, notes: list[str] | None = None) -> tuple[np.ndarray, tuple[float, float] | None]:
    """The decoded pixels and spacing; what was read around (a damaged spacing or VOI) goes to ``notes``."""
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: file is empty (0 bytes)")
    if is_dicom(path):
        return _read_dicom(path, notes)
    return _read_raster(path), None


def _read_raster(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                samples = max(1, int(series.keyframe.samplesperpixel))
                # the header's count, before a byte is decoded: a 1 MB tiled-deflate file can hold 30000²
                check_pixel_budget(path, series.shape, int(np.prod(series.shape)) // samples)
                return np.asarray(series.asarray())
        if path.suffix.lower() == ".png" and (grey := _read_grey_png(path)) is not None:
            return grey
        _check_pillow_budget(path)
        return np.asarray(iio.imread(path))
    except ImageError:
        raise
    except Exception as exc:  # decoders raise many unrelated types for a corrupt file
        raise ImageError(f"{path}: not a readable image ({type(exc).__name__}: {_short(exc)})") from None


_PIL_GREY_MODES = ("L", "I;16", "I;16B", "I;16L", "I")


def _read_grey_png(path: Path) -> np.ndarray | None:
    """A grey PNG's pixels straight from Pillow, or None for other modes (palette, RGB, LA: left to imageio).

    imageio adds a writeable copy of the decoded pixels (40 MB for a 20-Mpx uint16 file) that
    :func:`to_grey`'s float conversion makes redundant; decoding itself (zlib) is the same.
    """
    with _open_pillow(path) as image:
        return np.asarray(image) if image.mode in _PIL_GREY_MODES else None


def _check_pillow_budget(path: Path) -> None:
    """Refuse a PNG/JPEG (or anything Pillow reads) whose header gives more pixels than the budget."""
    with _open_pillow(path):
        pass


def _open_pillow(path: Path) -> PIL.Image.Image:
    """Open with Pillow (header only: Pillow decodes on first pixel access) and check the pixel budget."""
    from PIL import Image

    try:
        image = Image.open(path)
    except Image.DecompressionBombError:
        # Pillow's own refusal (over 2 × Image.MAX_IMAGE_PIXELS) came first: say it in our terms
        limit = max_pixels()
        raise ImageError(
            f"{path}: image has more than {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} Mpx, "
            f"over the {limit / 1e6:.1f} Mpx limit; set {MAX_PIXELS_ENV} to change it"
        ) from None
    try:
        width, height = image.size
        check_pixel_budget(path, (height, width), height * width * max(1, getattr(image, "n_frames", 1)))
    except BaseException:
        image.close()
        raise
    return image


def _read_dicom(path: Path, notes: list[str] | None) -> tuple[np.ndarray, tuple[float, float] | None]:
    from ..dicom.read import read_dicom_pixels  # lazy: pydicom and its plugins load only for DICOM

    return read_dicom_pixels(path, notes)


def to_grey(array: np.ndarray) -> np.ndarray:
    """Validate and convert an array to a 2-D float32 grey image; raise :class:`ImageError` if unusable."""
    arr = np.asarray(array)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ImageError(f"pixel type {arr.dtype} is not an image")
    if arr.size == 0:
        raise ImageError(f"image is empty (shape {arr.shape})")
    arr = np.squeeze(arr) if arr.ndim > 2 and 1 in arr.shape[:-1] else arr
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        # RGB(A) -> luminance; alpha is ignored because radiographs carry no transparency
        rgb = arr[..., :3].astype(np.float32)
        arr = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    elif arr.ndim == 3 and arr.shape[-1] == 2:
        arr = arr[..., 0]  # grey + alpha (an "LA" PNG); the alpha carries nothing
    elif arr.ndim == 3:
        axis = int(np.argmin(arr.shape))  # the short axis is the stack; TIFF stacks put it first, channels last
        raise ImageError(
            f"got a 3-D stack of shape {arr.shape}: axis {axis} has {arr.shape[axis]} slices; "
            "a single 2-D radiograph is needed (pick one slice)"
        )
    elif arr.ndim != 2:
        raise ImageError(f"expected a 2-D image, got {arr.ndim}-D with shape {arr.shape}")
    if min(arr.shape) < MIN_SIDE:
        raise ImageError(f"image is too small ({arr.shape[0]}×{arr.shape[1]}); need at least {MIN_SIDE} px per side")
    out = arr.astype(np.float32, copy=False)
    if arr.dtype.kind == "f":  # integers are always finite: skip two full-size passes on a 20-Mpx uint16 PNG
        finite = np.isfinite(out)
        if not finite.any():
            raise ImageError("image is all NaN/inf")
        if not finite.all():
            raise ImageError(f"image contains {int((~finite).sum())} NaN/inf pixels")
    if float(arr.max()) == float(arr.min()):  # on the source dtype: half the bytes of float32 for a uint16 PNG
        raise ImageError(f"image is constant (every pixel = {out.flat[0]:g}); nothing to segment")
    return out


def list_images(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders into a sorted list of candidate image files."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found.extend(
                p for p in sorted(item.iterdir()) if p.is_file() and not p.name.startswith(".")
                and (p.suffix.lower() in IMAGE_SUFFIXES or is_dicom(p))
            )
        else:
            found.append(item)
    return found
