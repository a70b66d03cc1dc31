"""Decode a single-frame DICOM radiograph, within the pixel budget, in any transfer syntax CR/DX archives use.

The header is read first and checked (pixel budget, frame count, a decoder for the transfer
syntax, codestream size) so that a hostile or unreadable file is refused before its pixels are
decoded. Deflated files get special care: pydicom inflates the whole dataset in one call, so a
2 MB file of 30000² zeros would cost 1.8 GB before any check; here the header comes from a small
inflated prefix and the full inflation is capped by what the header promises.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from ..images.errors import ImageError, _short, check_pixel_budget

if TYPE_CHECKING:  # pydicom loads lazily, only when a DICOM is read
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.uid import UID

# what to install for each compressed syntax when no pydicom plugin can decode it
_JPEG_HINT = "pylibjpeg and pylibjpeg-libjpeg (pip install pylibjpeg pylibjpeg-libjpeg)"
_J2K_HINT = "pylibjpeg and pylibjpeg-openjpeg (pip install pylibjpeg pylibjpeg-openjpeg)"
_RLE_HINT = "pylibjpeg-rle (pip install pylibjpeg pylibjpeg-rle)"
_DECODER_HINTS = {
    "1.2.840.10008.1.2.4.50": _JPEG_HINT,  # JPEG baseline
    "1.2.840.10008.1.2.4.51": _JPEG_HINT,  # JPEG extended
    "1.2.840.10008.1.2.4.57": _JPEG_HINT,  # JPEG lossless P14
    "1.2.840.10008.1.2.4.70": _JPEG_HINT,  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80": _JPEG_HINT,  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": _JPEG_HINT,  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": _J2K_HINT,
    "1.2.840.10008.1.2.4.91": _J2K_HINT,
    "1.2.840.10008.1.2.4.201": _J2K_HINT,  # HTJ2K
    "1.2.840.10008.1.2.4.202": _J2K_HINT,
    "1.2.840.10008.1.2.4.203": _J2K_HINT,
    "1.2.840.10008.1.2.5": _RLE_HINT,
}
_NO_DECODER = "no Python decoder handles it; convert it to Explicit VR Little Endian first (dcmtk: dcmdjpeg/dcmconv, gdcm: gdcmconv --raw)"

DEFLATED = "1.2.840.10008.1.2.1.99"
HEADER_CAP = 16 * 1024 * 1024  # inflated bytes a Deflated file's header (all but pixels) may take
_AFTER_IMAGE_PIXEL_GROUP = 0x00290000  # every Image Pixel attribute (group 0028) precedes this tag


def read_dicom_pixels(path: Path, notes: list[str] | None = None) -> tuple[np.ndarray, tuple[float, float] | None]:
    """The radiograph's pixels after modality and VOI LUTs, MONOCHROME1 flipped, and its spacing in mm.

    A VOI or spacing that cannot be used is left out with a line in ``notes``: they describe
    how to show or measure the image, and the pixels are still right without them.
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    notes = [] if notes is None else notes
    header = read_header(path)
    check_image_header(path, header)
    ds = _read_full(path, header)
    _check_codestream(path, ds)
    try:
        pixels = apply_modality_lut(ds.pixel_array, ds)
    except Exception as exc:
        raise ImageError(f"{path}: not a readable DICOM file ({type(exc).__name__}: {_short(exc)})") from None
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        try:
            pixels = apply_voi_lut(pixels, ds, prefer_lut=True)
        except Exception as exc:  # a window width of 0, a LUT shorter than its descriptor
            notes.append(f"{path}: VOI LUT/window ignored ({type(exc).__name__}: {_short(exc)})")
    pixels = np.asarray(pixels, dtype=np.float32)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        # MONOCHROME1 stores air as bright; flip so lungs are dark as in every other input
        pixels = pixels.max() + pixels.min() - pixels
    return pixels, pixel_spacing(ds, notes, path)


# a projection X-ray's pixel is 0.05-1 mm; outside this range the value is damaged, and areas
# computed from it (1e200 mm gives inf cm²) would be worse than none
SPACING_RANGE_MM = (0.001, 10.0)


def pixel_spacing(ds: Dataset, notes: list[str] | None = None, path: Path | str = "") -> tuple[float, float] | None:
    """(row, column) spacing in mm: PixelSpacing, else the detector's ImagerPixelSpacing (projection X-ray).

    A value that is not two numbers within :data:`SPACING_RANGE_MM` is skipped, with a line in ``notes``.
    """
    from pydicom.multival import MultiValue

    low, high = SPACING_RANGE_MM
    for tag in ("PixelSpacing", "ImagerPixelSpacing"):
        element = ds.get_item(tag)
        if element is None or element.value in (None, b"", ""):
            continue
        try:  # pydicom converts DS values on first access: 'abc' raises here
            value = ds[tag].value
            spacing = tuple(float(v) for v in (value if isinstance(value, (MultiValue, list, tuple)) else [value]))
        except (TypeError, ValueError):
            spacing = ()
        if len(spacing) == 2 and all(low <= v <= high for v in spacing):  # also refuses nan
            return (spacing[0], spacing[1])
        if notes is not None:
            raw = element.value
            shown = raw.decode("latin-1", "replace").strip() if isinstance(raw, bytes) else str(raw)
            notes.append(f"{path}: {tag} {shown[:40]!r} is not a pixel size ({low:g}-{high:g} mm); ignored, areas are in pixels")
    return None


def read_header(path: Path) -> FileDataset:
    """Everything before the pixel data, in bounded memory whatever the transfer syntax."""
    try:
        with open(path, "rb") as handle:
            return _header(handle, path)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{path}: not a readable DICOM file ({type(exc).__name__}: {_short(exc)})") from None


def header_of_prefix(prefix: bytes, complete: bool, name: str) -> FileDataset | None:
    """The header from the first bytes of a DICOM file, or None while more bytes are needed.

    ``complete``: no more bytes will come (the whole file, or as much as is ever read).
    """
    try:
        header = _header(io.BytesIO(prefix), name)
    except Exception as exc:
        if not complete:
            return None
        raise ImageError(f"{name}: not a readable DICOM file ({type(exc).__name__}: {_short(exc)})") from None
    # BitsAllocated (0028,0100) follows Rows, Columns, frames and samples: what the checks need
    return header if complete or "BitsAllocated" in header else None


def _header(handle: BinaryIO, name: Path | str) -> FileDataset:
    import pydicom
    from pydicom.filereader import _read_file_meta_info, read_preamble

    read_preamble(handle, False)
    meta = _read_file_meta_info(handle)
    handle.seek(0)
    if str(meta.get("TransferSyntaxUID", "")) != DEFLATED:
        return pydicom.dcmread(handle, stop_before_pixels=True)
    return _deflated_header(handle, meta, name)


def pixel_bytes(header: Dataset) -> int:
    """Bytes of the decoded pixel data a header promises."""
    return int(header.Rows) * int(header.Columns) * int(getattr(header, "SamplesPerPixel", 1) or 1) * max(
        1, int(getattr(header, "NumberOfFrames", 1) or 1)) * ((int(getattr(header, "BitsAllocated", 16) or 16) + 7) // 8)


def check_image_header(path: Path | str, ds: Dataset) -> None:
    """Refuse, in one line naming ``path``, a header this reader would not decode: a SEG, no image, over the budget."""
    from pydicom.uid import SegmentationStorage

    if str(getattr(ds, "SOPClassUID", "")) == SegmentationStorage:
        raise ImageError(f"{path}: is a DICOM Segmentation (a mask), not an X-ray; open it as labels")
    if "Rows" not in ds or "Columns" not in ds:
        raise ImageError(f"{path}: DICOM file has no pixel data (no Rows/Columns: not an image)")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):  # a damaged header: Rows of "abc", NumberOfFrames of [1, 2]
        raise ImageError(f"{path}: DICOM header has invalid Rows/Columns/NumberOfFrames") from None
    shape = (frames, rows, cols) if frames > 1 else (rows, cols)
    check_pixel_budget(path, shape, rows * cols * max(frames, 1))
    if frames > 1:
        raise ImageError(f"{path}: DICOM has {frames} frames (axis 0); a single 2-D radiograph is needed")
    _check_decoder(path, ds.file_meta.get("TransferSyntaxUID"))


def _check_decoder(path: Path | str, syntax: UID | None) -> None:
    """Refuse, naming the syntax and what to install, when no installed plugin decodes ``syntax``."""
    from pydicom.pixels import get_decoder

    if syntax is None or not syntax.is_compressed:
        return
    try:
        available = get_decoder(syntax).is_available
    except NotImplementedError:  # pydicom has no decoder for this syntax at all (MPEG, JPEG XL, ...)
        available = False
    if not available:
        how = f"install {_DECODER_HINTS[syntax]}" if syntax in _DECODER_HINTS else _NO_DECODER
        raise ImageError(f"{path}: cannot decode transfer syntax {syntax.name} ({syntax}): {how}")


def _read_full(path: Path, header: FileDataset) -> FileDataset:
    import pydicom

    try:
        if str(header.file_meta.TransferSyntaxUID) == DEFLATED:
            return _deflated_full(path, header)
        return pydicom.dcmread(path)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{path}: not a readable DICOM file ({type(exc).__name__}: {_short(exc)})") from None


def _check_codestream(path: Path, ds: FileDataset) -> None:
    """A compressed frame decodes to its codestream's size, not the header's: make sure they agree.

    Otherwise a JPEG claiming 30000² inside a DICOM whose header says 512² passes the budget check.
    """
    syntax = ds.file_meta.TransferSyntaxUID
    if not syntax.is_encapsulated or syntax == "1.2.840.10008.1.2.5":  # RLE decodes to the header's size
        return
    from pydicom.encaps import generate_fragments

    fragments = generate_fragments(ds.PixelData)
    next(fragments, None)  # the Basic Offset Table item, empty or not, comes first
    first = next(fragments, b"")
    size = _codestream_size(bytes(first[:65536]))
    if size is not None and size != (int(ds.Rows), int(ds.Columns)):
        raise ImageError(
            f"{path}: compressed image is {size[0]}×{size[1]} but the DICOM header says {ds.Rows}×{ds.Columns}"
        )


def _codestream_size(start: bytes) -> tuple[int, int] | None:
    """(rows, columns) from a JPEG/JPEG-LS SOF or a JPEG 2000 SIZ marker; None when not recognised."""
    if start[:2] == b"\xff\xd8":
        from pydicom.pixels.utils import _get_jpg_parameters  # pydicom's own SOF parser

        info = _get_jpg_parameters(start)
        return (info["height"], info["width"]) if "height" in info else None
    offset = start.find(b"\xff\x4f\xff\x51")  # SOC then SIZ, possibly after a JP2 header
    if offset < 0 or len(start) < offset + 24:
        return None
    xsiz, ysiz, x0, y0 = struct.unpack(">4I", start[offset + 8 : offset + 24])
    return (ysiz - y0, xsiz - x0)


# -- Deflated Explicit VR Little Endian ------------------------------------------------------


def _dataset_offset(handle: BinaryIO) -> int:
    """Byte offset where the dataset starts: after the preamble, "DICM" and the (never deflated) group 0002."""
    handle.seek(132)
    while True:
        start = handle.tell()
        head = handle.read(8)
        if len(head) < 8:
            raise ImageError("file ends inside its meta information")
        group, _, vr = struct.unpack("<HH2s", head[:6])
        if group != 0x0002:
            return start
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV"):
            length = struct.unpack("<I", handle.read(4))[0]
        else:
            length = struct.unpack("<H", head[6:8])[0]
        handle.seek(length, io.SEEK_CUR)


def _inflate(handle: BinaryIO, limit: int) -> tuple[bytes, bool]:
    """Inflate the dataset of a Deflated file up to ``limit`` bytes; also say whether the stream ended."""
    handle.seek(_dataset_offset(handle))
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    while len(out) < limit and not inflater.eof:
        chunk = inflater.unconsumed_tail or handle.read(1 << 20)
        if not chunk:
            break
        out += inflater.decompress(chunk, limit - len(out))
    ended = inflater.eof or (not inflater.unconsumed_tail and not handle.read(1))
    return bytes(out), ended


def _deflated_header(handle: BinaryIO, meta: FileMetaDataset, name: Path | str) -> FileDataset:
    from pydicom.dataset import FileDataset
    from pydicom.filereader import read_dataset

    size = 65536
    while True:
        prefix, ended = _inflate(handle, size)
        # parse up to the first tag after the Image Pixel group; a short prefix just ends the parse early
        ds = read_dataset(
            io.BytesIO(prefix), is_implicit_VR=False, is_little_endian=True,
            stop_when=lambda tag, vr, length: int(tag) >= _AFTER_IMAGE_PIXEL_GROUP,
        )
        if ended or "BitsAllocated" in ds:  # (0028,0100) follows Rows, Columns, frames and samples
            break
        if size >= HEADER_CAP:
            raise ImageError(f"{name}: Deflated DICOM header is larger than {HEADER_CAP // 2**20} MB")
        size *= 4
    return FileDataset(str(name), ds, preamble=None, file_meta=meta, is_implicit_VR=False, is_little_endian=True)


def _deflated_full(path: Path, header: FileDataset) -> FileDataset:
    """The whole dataset, inflating no more than the header's pixels plus a header's worth of bytes."""
    from pydicom.dataset import FileDataset
    from pydicom.filereader import read_dataset

    with open(path, "rb") as handle:
        data, ended = _inflate(handle, pixel_bytes(header) + HEADER_CAP)
    if not ended:
        raise ImageError(
            f"{path}: Deflated DICOM inflates to more than its {header.Rows}×{header.Columns} header promises"
        )
    ds = read_dataset(io.BytesIO(data), is_implicit_VR=False, is_little_endian=True)
    return FileDataset(
        str(path), ds, preamble=None, file_meta=header.file_meta, is_implicit_VR=False, is_little_endian=True
    )
