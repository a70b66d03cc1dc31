"""What every image reader shares: the one error type, the pixel budget, and short error texts.

A module of its own, below both :mod:`napari_lung_unet.images.read` (PNG/TIFF/JPEG) and
:mod:`napari_lung_unet.dicom.read` (DICOM), so that neither imports the other to raise or check.
"""

from __future__ import annotations

from pathlib import Path

from ..settings import NUMBERS, SettingError, env_number


class ImageError(ValueError):
    """The file or array is not a usable 2-D chest X-ray; the message says why."""


# -- pixel budget ---------------------------------------------------------------------------

MAX_PIXELS_ENV = "LUNG_UNET_MAX_PIXELS"
# the largest flat-panel detectors are about 4300 × 4300 (18.5 Mpx); 25 Mpx keeps a margin while
# a 30000² decompression bomb (900 Mpx, 1.8 GB at 16 bit before float conversion) is refused
DEFAULT_MAX_PIXELS = int(NUMBERS[MAX_PIXELS_ENV].default)


def max_pixels() -> int:
    """The most pixels any reader decodes: ``$LUNG_UNET_MAX_PIXELS`` (range-checked) or :data:`DEFAULT_MAX_PIXELS`."""
    try:
        return int(env_number(MAX_PIXELS_ENV))
    except SettingError as exc:  # raised inside readers, whose callers expect ImageError
        raise ImageError(str(exc)) from None


def check_pixel_budget(path: Path | str, shape: tuple[int, ...], count: int) -> None:
    """Raise :class:`ImageError` naming ``path`` when a header's ``count`` pixels exceed :func:`max_pixels`.

    Called with the header's numbers before anything is decoded, so the refusal costs no memory.
    """
    limit = max_pixels()
    if count > limit:
        size = "×".join(str(int(n)) for n in shape)
        raise ImageError(
            f"{path}: image is {size} ({count / 1e6:.1f} Mpx), over the {limit / 1e6:.1f} Mpx limit; "
            f"set {MAX_PIXELS_ENV} to change it"
        )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text[:160]
