"""The corrections store: the one format that the napari widget writes and ``training`` reads.

Layout (a flat ``images/`` + ``masks/`` dataset, plus one JSON record per case)::

    <store>/images/<case_id>.png    grey image, uint8 or uint16 as read
    <store>/masks/<case_id>.png     uint8 labels: 0 background, 1 right lung, 2 left lung
    <store>/records/<case_id>.json  provenance: source path, sha256, model version, edits, time

Writing a case replaces any earlier entry with the same id, so re-accepting never duplicates.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_write_json, atomic_write_png
from .card import utc_now

IMAGES, MASKS, RECORDS = "images", "masks", "records"
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


def safe_case_id(name: str) -> str:
    cleaned = _SAFE_ID.sub("_", name).strip("._")
    return cleaned or "case"


def sha256_of(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@dataclass
class CorrectionRecord:
    case_id: str
    source_path: str
    image_sha256: str
    model_version: str
    fraction_changed: float
    shape: list[int] = field(default_factory=list)
    accepted: str = field(default_factory=utc_now)


def to_storable_image(pixels: np.ndarray) -> np.ndarray:
    """Keep 8-/16-bit data as is; rescale anything else to uint16 so PNG can hold it losslessly enough."""
    if pixels.dtype in (np.uint8, np.uint16):
        return pixels
    lo, hi = float(np.min(pixels)), float(np.max(pixels))
    return np.round((pixels - lo) / max(hi - lo, 1e-12) * 65535.0).astype(np.uint16)


class CorrectionsStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def image_path(self, case_id: str) -> Path:
        return self.root / IMAGES / f"{case_id}.png"

    def mask_path(self, case_id: str) -> Path:
        return self.root / MASKS / f"{case_id}.png"

    def record_path(self, case_id: str) -> Path:
        return self.root / RECORDS / f"{case_id}.json"

    def add(self, image: np.ndarray, labels: np.ndarray, record: CorrectionRecord) -> None:
        if image.shape[:2] != labels.shape:
            raise ValueError(f"mask shape {labels.shape} does not match image shape {image.shape[:2]}")
        case_id = safe_case_id(record.case_id)
        record.case_id = case_id
        record.shape = list(labels.shape)
        # image and mask first, record last: a case counts only once its record exists
        atomic_write_png(self.image_path(case_id), to_storable_image(image))
        atomic_write_png(self.mask_path(case_id), np.asarray(labels, dtype=np.uint8))
        atomic_write_json(self.record_path(case_id), asdict(record))

    def case_ids(self) -> list[str]:
        folder = self.root / RECORDS
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.json") if self.image_path(p.stem).is_file())

    def record(self, case_id: str) -> CorrectionRecord:
        return CorrectionRecord(**json.loads(self.record_path(case_id).read_text(encoding="utf-8")))

    def __len__(self) -> int:
        return len(self.case_ids())
