"""The corrections store: the one format that the napari widget writes and ``training`` reads.

Layout (one JSON record per case, naming its image and mask files)::

    <store>/images/<case_id>.<hash16>.png   grey image, uint8 or uint16 as read
    <store>/masks/<case_id>.<hash16>.png    uint8 labels: 0 background, 1 right lung, 2 left lung
    <store>/segs/<case_id>.<hash16>.seg.dcm  DICOM cases only: the accepted labels as a DICOM SEG
    <store>/records/<case_id>.json          provenance, and the names and sha256 of its files

A case is one unit. Image, mask (and SEG) are written under names taken from their content, so they
never overwrite the files a record already names; then the record is replaced by one atomic
rename, which is the commit: a crash before it leaves the earlier accept whole, a crash after
it the new one. Readers check both files against the record's sha256, so a damaged or
hand-mixed case is refused by name instead of training on another image's mask. Re-accepting
replaces the case, so it never duplicates.

Stores written before this layout (``images/<case_id>.png``, no file hashes) are still read:
their image is checked against the record's pixel hash instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock
from pydantic import ConfigDict, TypeAdapter, ValidationError

from ..images.masks import checked_mask
from ..nn.card import describe, utc_now
from .atomic import atomic_write_bytes, atomic_write_json, encode_png

IMAGES, MASKS, SEGS, RECORDS = "images", "masks", "segs", "records"
SEG_SUFFIX = ".seg.dcm"
LOCK_NAME = ".lock"
LOCK_TIMEOUT_S = 60.0  # another accept holds it for well under a second
MAX_RECORD_BYTES = 1 << 20
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")
_CONTENT_FILE = re.compile(r"^(?P<case>.+)\.[0-9a-f]{16}(\.png|\.seg\.dcm)$")


class CorrectionsError(ValueError):
    """A stored case is garbled or inconsistent; the message names the case and the file."""


def safe_case_id(name: str) -> str:
    cleaned = _SAFE_ID.sub("_", name).strip("._")
    return cleaned or "case"


def sha256_of(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class CorrectionRecord:
    __pydantic_config__ = ConfigDict(strict=True, allow_inf_nan=False)

    case_id: str
    source_path: str
    image_sha256: str  # of the pixels as accepted
    model_version: str
    fraction_changed: float
    shape: list[int] = field(default_factory=list)
    accepted: str = field(default_factory=utc_now)
    # the files this accept wrote, by name and content: set by CorrectionsStore.add
    image_file: str = ""
    mask_file: str = ""
    image_file_sha256: str = ""
    mask_file_sha256: str = ""
    # a DICOM case's SEG of the accepted labels ("" for other cases, and for records before SEGs)
    seg_file: str = ""
    seg_file_sha256: str = ""


_RECORD = TypeAdapter(CorrectionRecord)


@dataclass(frozen=True)
class StoredCase:
    """One accepted case whose image and mask were checked against its record."""

    case_id: str
    image: Path
    mask: Path
    record: CorrectionRecord
    seg: Path | None = None  # the DICOM SEG of this accept, for a DICOM case


def to_storable_image(pixels: np.ndarray) -> np.ndarray:
    """Keep 8-/16-bit data as is; rescale anything else to uint16 so PNG can hold it losslessly enough."""
    if pixels.dtype in (np.uint8, np.uint16):
        return pixels
    lo, hi = float(np.min(pixels)), float(np.max(pixels))
    return np.round((pixels - lo) / max(hi - lo, 1e-12) * 65535.0).astype(np.uint16)


class CorrectionsStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- reading ---------------------------------------------------------------
    def record_path(self, case_id: str) -> Path:
        return self.root / RECORDS / f"{case_id}.json"

    def case_ids(self) -> list[str]:
        folder = self.root / RECORDS
        if not folder.is_dir():
            return []
        # hidden names are temp files of writes in progress (or killed), never cases
        return sorted(p.stem for p in folder.glob("*.json") if not p.name.startswith("."))

    def record(self, case_id: str) -> CorrectionRecord:
        path = self.record_path(case_id)
        try:
            with open(path, "rb") as handle:
                text = handle.read(MAX_RECORD_BYTES + 1)
            if len(text) > MAX_RECORD_BYTES:
                raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
            record = _RECORD.validate_json(text)
        except ValidationError as exc:
            raise CorrectionsError(f"case {case_id}: garbled record {path}: {describe(exc)}") from None
        except (OSError, ValueError) as exc:
            raise CorrectionsError(f"case {case_id}: unreadable record {path}: {exc}") from None
        if record.case_id != case_id:
            raise CorrectionsError(f"case {case_id}: record {path} is for case {record.case_id!r}")
        return record

    def case(self, case_id: str) -> StoredCase:
        """The case's files, checked against its record: never an image of one accept with the mask of another."""
        record = self.record(case_id)
        if not record.image_file:
            return self._legacy_case(case_id, record)
        image = self._named_file(IMAGES, record.image_file, record.image_file_sha256, case_id)
        mask = self._named_file(MASKS, record.mask_file, record.mask_file_sha256, case_id)
        seg = self._named_file(SEGS, record.seg_file, record.seg_file_sha256, case_id) if record.seg_file else None
        return StoredCase(case_id, image, mask, record, seg)

    def image_path(self, case_id: str) -> Path:
        return self.case(case_id).image

    def mask_path(self, case_id: str) -> Path:
        return self.case(case_id).mask

    def _named_file(self, folder: str, name: str, sha256: str, case_id: str) -> Path:
        match = _CONTENT_FILE.match(name)
        if match is None or match["case"] != case_id or "/" in name or "\\" in name:
            raise CorrectionsError(f"case {case_id}: record {self.record_path(case_id)} names an invalid {folder} file {name!r}")
        path = self.root / folder / name
        try:
            actual = sha256_file(path)
        except OSError as exc:
            raise CorrectionsError(f"case {case_id}: {path} is missing or unreadable ({exc.strerror or exc})") from None
        if actual != sha256:
            raise CorrectionsError(f"case {case_id}: {path} does not match its record (sha256 differs); re-accept the case")
        return path

    def _legacy_case(self, case_id: str, record: CorrectionRecord) -> StoredCase:
        import imageio.v3 as iio

        image, mask = self.root / IMAGES / f"{case_id}.png", self.root / MASKS / f"{case_id}.png"
        try:
            pixels = np.asarray(iio.imread(image))
        except Exception as exc:  # decoders raise many types for damaged files
            raise CorrectionsError(f"case {case_id}: {image} is missing or unreadable ({exc})") from None
        if sha256_of(pixels) != record.image_sha256:
            raise CorrectionsError(
                f"case {case_id}: {image} is not the image its record was accepted with "
                "(sha256 differs: an interrupted re-accept?); re-accept the case"
            )
        return StoredCase(case_id, image, mask, record)

    def __len__(self) -> int:
        return len(self.case_ids())

    # -- writing ---------------------------------------------------------------
    def add(self, image: np.ndarray, labels: np.ndarray, record: CorrectionRecord, seg: bytes | None = None) -> None:
        """Store one accepted case as a unit; an earlier accept of the same case is replaced whole.

        ``seg`` is the encoded DICOM SEG of ``labels`` for a DICOM case: it joins the same unit
        (named by the record), so a reader never gets the SEG of another accept.
        """
        case_id = safe_case_id(record.case_id)
        labels = checked_mask(labels, image.shape, f"case {case_id}", binary_255=False)
        image_png, mask_png = encode_png(to_storable_image(image)), encode_png(labels.astype(np.uint8))
        record.case_id = case_id
        record.shape = list(labels.shape)
        record.image_file_sha256 = hashlib.sha256(image_png).hexdigest()
        record.mask_file_sha256 = hashlib.sha256(mask_png).hexdigest()
        record.image_file = f"{case_id}.{record.image_file_sha256[:16]}.png"
        record.mask_file = f"{case_id}.{record.mask_file_sha256[:16]}.png"
        record.seg_file_sha256 = hashlib.sha256(seg).hexdigest() if seg is not None else ""
        record.seg_file = f"{case_id}.{record.seg_file_sha256[:16]}{SEG_SUFFIX}" if seg is not None else ""
        self.root.mkdir(parents=True, exist_ok=True)
        # one writer at a time: the sweep below must not delete another accept's uncommitted files
        with FileLock(self.root / LOCK_NAME, timeout=LOCK_TIMEOUT_S):
            atomic_write_bytes(self.root / IMAGES / record.image_file, image_png)
            atomic_write_bytes(self.root / MASKS / record.mask_file, mask_png)
            if seg is not None:
                atomic_write_bytes(self.root / SEGS / record.seg_file, seg)
            atomic_write_json(self.record_path(case_id), asdict(record))  # the commit
            self._sweep()

    def _sweep(self) -> None:
        """Delete files no record names: the previous accept's, and what a killed accept left."""
        named: dict[str, set[str] | None] = {}  # case -> its record's files; None if the record is garbled

        def files_of(case_id: str) -> set[str] | None:
            if case_id not in named:
                try:
                    rec = self.record(case_id)
                    named[case_id] = {rec.image_file, rec.mask_file, rec.seg_file} - {""} if rec.image_file else set()
                except CorrectionsError:
                    exists = self.record_path(case_id).exists()
                    named[case_id] = None if exists else set()  # keep a garbled case's files for its owner
            return named[case_id]

        for folder in (IMAGES, MASKS, SEGS, RECORDS):
            if not (self.root / folder).is_dir():
                continue
            for path in (self.root / folder).iterdir():
                if path.name.startswith("."):  # temp file of a killed write
                    path.unlink(missing_ok=True)
                    continue
                match = _CONTENT_FILE.match(path.name)
                if folder != RECORDS and match is not None:
                    keep = files_of(match["case"])
                    if keep is not None and path.name not in keep:
                        path.unlink(missing_ok=True)
        for case_id, keep in named.items():
            if keep:  # the case is in the current layout now: its pre-layout files are stale
                for folder in (IMAGES, MASKS):
                    (self.root / folder / f"{case_id}.png").unlink(missing_ok=True)
