"""WADO-RS retrieval of one instance, streamed to a file with its header checked before its pixels.

The answer is read in pieces: the first bytes of the DICOM part are parsed as a header (every
transfer syntax, Deflated included, via :func:`napari_lung_unet.dicom.read.header_of_prefix`), and
only an image within the pixel budget is written on. A 2 MB Deflated 30000² instance is refused
after its first kilobytes; an answer that is not DICOM, or ends before its closing boundary, is
refused in one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..images.errors import ImageError
from .read import HEADER_CAP, check_image_header, header_of_prefix, pixel_bytes

if TYPE_CHECKING:
    import requests

ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
_CHUNK = 1 << 16
_FIRST = 1 << 16  # header bytes tried first; grown by 4× up to HEADER_CAP


class NotDicom(ValueError):
    """The server's answer is not a DICOM instance (HTML, a cut-off body, another format)."""


@dataclass(frozen=True)
class Skipped:
    """An instance not written, and why (a report, a SEG, an image over the budget)."""

    reason: str


def save_instance(response: requests.Response, target: Path, name: str) -> Path | Skipped:
    """Stream the instance in ``response`` to ``target``; return it, or why it was skipped.

    ``name`` says which instance in messages. Raises :class:`NotDicom` when the answer is not
    one whole DICOM instance.
    """
    from pydicom.uid import SegmentationStorage

    pieces = _dicom_part(response)
    prefix, complete, size = bytearray(), False, _FIRST
    while True:  # gather the header's bytes: BitsAllocated reached, the part ended, or the cap
        for piece in pieces:
            prefix += piece
            if len(prefix) >= size:
                break
        else:
            complete = True
        if len(prefix) >= 132 and prefix[128:132] != b"DICM":
            raise NotDicom(f"{name}: the server's answer is not DICOM (no DICM prefix; starts {bytes(prefix[:16])!r})")
        try:
            header = header_of_prefix(bytes(prefix), complete or size >= HEADER_CAP, name)
        except ImageError as exc:  # DICM, then garbage: the server's fault, like any other non-DICOM answer
            raise NotDicom(str(exc)) from None
        if header is not None:
            break
        size *= 4
    kind = str(getattr(header, "SOPClassUID", "unknown SOP class"))
    if kind == SegmentationStorage or "Rows" not in header:
        return Skipped(f"a {getattr(getattr(header, 'SOPClassUID', None), 'name', kind)}, not an image")
    try:
        check_image_header(name, header)
    except ImageError as exc:
        return Skipped(str(exc).removeprefix(f"{name}: "))
    # an encoded image is never much larger than its pixels: more is a stream that does not end
    cap = len(prefix) + 2 * pixel_bytes(header) + HEADER_CAP
    written = len(prefix)
    with open(target, "wb") as out:
        out.write(prefix)
        for piece in pieces:
            written += len(piece)
            if written > cap:
                raise NotDicom(f"{name}: the server's answer is larger than its {header.Rows}×{header.Columns} header promises")
            out.write(piece)
    return target


def _dicom_part(response: requests.Response) -> Iterator[bytes]:
    """The body of the answer's one DICOM part, in pieces: multipart/related, or bare application/dicom."""
    kind = response.headers.get("Content-Type", "")
    chunks = response.iter_content(_CHUNK)
    media, _, params = kind.partition(";")
    media = media.strip().lower()
    if media == "application/dicom":  # some servers send the instance bare (dicomweb-client accepts it too)
        yield from chunks
        return
    boundary = _boundary(params)
    if media != "multipart/related" or boundary is None:
        raise NotDicom(f"the server answered {kind or 'without a content type'}, not multipart DICOM")
    buffer = b""
    opener = b"--" + boundary
    for chunk in chunks:  # the part's headers, up to the blank line
        buffer += chunk
        start = buffer.find(opener)
        end = buffer.find(b"\r\n\r\n", start) if start >= 0 else -1
        if end >= 0:
            buffer = buffer[end + 4 :]
            break
        if len(buffer) > _CHUNK:
            raise NotDicom("the server's multipart answer has no part")
    else:
        raise NotDicom("the server's answer ended before its first part")
    closer = b"\r\n--" + boundary
    while True:
        end = buffer.find(closer)
        if end >= 0:
            yield buffer[:end]
            return
        keep = len(closer) - 1  # a closer may straddle two chunks
        if len(buffer) > keep:
            yield buffer[:-keep]
            buffer = buffer[-keep:]
        chunk = next(chunks, None)
        if chunk is None:
            raise NotDicom("the server's answer was cut off (no closing boundary)")
        buffer += chunk


def _boundary(params: str) -> bytes | None:
    for item in params.split(";"):
        key, _, value = item.strip().partition("=")
        if key.lower() == "boundary" and value.strip('"'):
            return value.strip('"').encode("latin-1")
    return None
