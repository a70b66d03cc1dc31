"""Writing an accepted mask to the corrections store, off the GUI thread (no Qt, no layers here).

At full resolution the store's 16-bit image PNG alone takes ~3 s to encode, so both kinds of
case are written by the dock's disk writer: a worklist case (its draft is queued just before) and
an ad-hoc case, any other open image, stored with the same record: the source file's path when the
image came from a file (else the layer's name) and the sha256 of its pixels.

A DICOM case also gets a DICOM SEG of the accepted labels, in the same store entry; a case of a
PACS worklist that asks for it then sends that SEG back to its study. Both are extras to the
correction: when either fails the correction stays stored and the writer returns a warning line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..images.read import ImageError, is_dicom, to_grey
from ..store.corrections import CorrectionRecord, CorrectionsStore, ProposalKept, safe_case_id
from ..store.source_image import StoredImage, stored_image


def write_case(
    store_dir: Path, source: Path | np.ndarray | StoredImage, labels: np.ndarray, record: CorrectionRecord,
    proposal: ProposalKept | None = None, legacy_id: str | None = None,
) -> tuple[str, int, str | None, Path | None]:
    """One accepted case into the store (record last). Runs on the dock's writer thread.

    ``source``: the image's file (the store keeps its pixels as read, or a DICOM file whole), or its
    pixels when it has no file. ``proposal``: the model's labels the clinician started from, kept beside the
    mask in the same store entry (None: the entry keeps none). ``legacy_id``: the id an older dock gave this
    case; when the store holds the same source under it, the accept replaces that case instead of adding a
    twin. Returns (store case id, cases in the store, a warning line or None, the stored SEG or None).
    """
    seg, warning = _dicom_seg(record, labels)
    store = CorrectionsStore(store_dir)
    if legacy_id:
        record.case_id = _own_legacy_case(store, legacy_id, record) or record.case_id
    store.add(source, labels, record, seg, proposal)
    stored_seg = store.case(record.case_id).seg if seg is not None else None
    return record.case_id, len(store), warning, stored_seg


def _own_legacy_case(store: CorrectionsStore, legacy_id: str, record: CorrectionRecord) -> str | None:
    """``legacy_id`` when the store holds this very source under it (accepted by an older dock), else None."""
    if not store.record_path(legacy_id).exists():
        return None
    try:
        old = store.record(legacy_id)
    except ValueError:  # a garbled record is its owner's to inspect: never replaced by a guess
        return None
    return legacy_id if old.source_path == record.source_path else None


def _dicom_seg(record: CorrectionRecord, labels: np.ndarray) -> tuple[bytes | None, str | None]:
    """The encoded SEG of ``labels`` when the case's source is a DICOM file, and why there is none if it fails."""
    from ..dicom.seg import seg_bytes, seg_for_image

    source = Path(record.source_path)
    if not (source.is_file() and is_dicom(source)):
        return None, None
    try:
        return seg_bytes(seg_for_image(source, labels, record.model_version, reviewed=True, convention=record.convention)), None
    except ImageError as exc:  # SegError too: the source cannot carry a SEG; the correction is still good
        return None, f"accepted without a DICOM SEG: {exc}"


def send_seg_back(folder: Path, seg: Path) -> str | None:
    """The network step, in its own worker: a slow PACS must not hold up the disk writer."""
    from ..dicom.pacs_worklist import store_seg_back
    from ..dicom.web import DicomWebError

    try:
        store_seg_back(folder, seg)
    except DicomWebError as exc:
        return f"accepted, but the SEG was not stored in the PACS: {exc}"
    return None


def write_adhoc(
    store_dir: Path, image: Any, labels: np.ndarray, record: CorrectionRecord, stem: str,
    proposal: ProposalKept | None = None,
) -> tuple[str, int, str | None, Path | None]:
    """Any other open image: its source file's pixels as read when it came from a file, else the layer's
    pixels (colour converted to grey as the model saw it); returns what :func:`write_case` returns.

    The id ends with the first 12 hex digits of the pixels' sha256, so accepting the same image
    again replaces its entry while two images of the same name stay apart.
    """
    source = Path(record.source_path)
    if source.is_file():  # the file the layer came from: the same representation as a worklist case
        stored = stored_image(source)
    else:
        pixels = np.asarray(image)
        if pixels.ndim != 2:  # colour: the luminance the model saw, in the layer's own bit depth
            grey = to_grey(pixels)
            pixels = np.round(grey).astype(pixels.dtype) if pixels.dtype in (np.uint8, np.uint16) else grey
        stored = stored_image(pixels)
    record.case_id = safe_case_id(f"{stem}-{stored.pixels_sha256[:12]}")
    return write_case(store_dir, stored, labels, record, proposal)


def source_of(layer: Any) -> tuple[str, str]:
    """Where an image layer came from, and a short name for its case id.

    Its file (our reader's metadata, or napari's own record of the file it opened) when it has
    one, else its layer name.
    """
    path = layer.metadata.get("source_path") or getattr(getattr(layer, "source", None), "path", None)
    if path:
        return str(Path(path).resolve()), Path(path).stem
    return f"napari layer '{layer.name}'", layer.name
