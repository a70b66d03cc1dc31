"""Writing an accepted mask to the corrections store, off the GUI thread (no Qt, no layers here).

At full resolution the store's 16-bit image PNG alone takes ~3 s to encode, so both kinds of
case are written by a worker: a worklist case (its draft first, then the store entry) and an
ad-hoc case, any other open image, stored with the same record: the source file's path when the
image came from a file (else the layer's name) and the sha256 of its pixels.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..corrections import CorrectionRecord, CorrectionsStore, safe_case_id, sha256_of
from ..io import to_grey
from ..worklist import Worklist


def write_case(
    worklist: Worklist, case_id: str, store_dir: Path, pixels: np.ndarray, labels: np.ndarray,
    record: CorrectionRecord, done: threading.Event,
) -> int:
    """A worklist case: its draft (what reopening the case shows), then the store entry (record last)."""
    try:
        worklist.save_draft(case_id, labels)
        record.image_sha256 = sha256_of(pixels)
        store = CorrectionsStore(store_dir)
        store.add(pixels, labels, record)
        return len(store)
    finally:
        done.set()


def write_adhoc(store_dir: Path, image: Any, labels: np.ndarray, record: CorrectionRecord, stem: str) -> tuple[str, int]:
    """Any other image: converted to grey as the model saw it; returns (store case id, cases in store).

    The id ends with the first 12 hex digits of the pixels' sha256, so accepting the same image
    again replaces its entry while two images of the same name stay apart.
    """
    pixels = np.asarray(image)
    if pixels.ndim != 2:  # colour: the luminance the model saw, in the file's own bit depth
        grey = to_grey(pixels)
        pixels = np.round(grey).astype(pixels.dtype) if pixels.dtype in (np.uint8, np.uint16) else grey
    record.image_sha256 = sha256_of(pixels)
    record.case_id = safe_case_id(f"{stem}-{record.image_sha256[:12]}")
    store = CorrectionsStore(store_dir)
    store.add(pixels, labels, record)
    return record.case_id, len(store)


def source_of(layer: Any) -> tuple[str, str]:
    """Where an image layer came from, and a short name for its case id.

    Its file (our reader's metadata, or napari's own record of the file it opened) when it has
    one, else its layer name.
    """
    path = layer.metadata.get("source_path") or getattr(getattr(layer, "source", None), "path", None)
    if path:
        return str(Path(path).resolve()), Path(path).stem
    return f"napari layer '{layer.name}'", layer.name
