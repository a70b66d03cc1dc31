"""The corrections store: the one format that the napari widget writes and ``training`` reads.

Layout (one JSON record per case, naming its image and mask files)::

    <store>/images/<name>.<hash16>.png|.tif|.dcm  the source's pixels as read, or its DICOM file (source_image.py)
    <store>/masks/<name>.<hash16>.png       uint8 labels: 0 background, 1 right lung, 2 left lung
    <store>/segs/<name>.<hash16>.seg.dcm    DICOM cases only: the accepted labels as a DICOM SEG
    <store>/proposals/<name>.<hash16>.png   the model's proposal the clinician started from (same labels as masks/)
    <store>/records/<name>.json             provenance, and the names and sha256 of its files
    <store>/.pending/<name>.<random>.json   the files an accept writes or replaces, until it has committed

``<name>`` is :func:`store_name` of the case id: the id itself when it is a clean file name, else
its cleaned form and a hash of the exact id, so ``ward a-x`` and ``ward_a-x`` never share a name.

A case is one unit. Image, mask (and SEG) are written under names taken from their content, so they
never overwrite the files a record already names; then the record is replaced by one atomic
rename, which is the commit: a crash before it leaves the earlier accept whole, a crash after
it the new one. Readers check both files against the record's sha256, so a damaged or
hand-mixed case is refused by name instead of training on another image's mask. Re-accepting
replaces the case, so it never duplicates.

The store touches only its own files: it refuses a sub-folder that is a symbolic link (or not a
folder) before writing anything, and it deletes only files a record of its own named (the
replaced accept's) or that an accept listed in ``.pending/`` before writing them (a killed
accept's), plus its own temp names. Anything else in its folders (a ``.thumbnails`` folder, a
user's file) is left alone.

The proposal (:class:`ProposalKept`, issue 33 #6) is MONAI Label's *original* label beside the *final*
one: the correction effort and the refiner's training read real proposals instead of regenerating
them. It is optional (records written before it, and accepts that pass none, have no proposal file)
and, when given, part of the same unit as the mask: named by its content, listed in the intent,
committed by the record.

Stores written before this layout (``images/<case_id>.png``, no file hashes) are still read:
their image is checked against the record's pixel hash instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ConfigDict, TypeAdapter, ValidationError

from ..images.conventions import CONVENTIONS, DEFAULT_CONVENTION, ConventionError, ConventionName, check_convention
from ..images.masks import checked_mask
from ..nn.card import describe, utc_now
from .atomic import atomic_write_bytes, atomic_write_json, encode_png, remove_leftovers
from .lockfile import LockFile
from .source_image import StoredImage, sha256_of, stored_image

IMAGES, MASKS, SEGS, RECORDS, PENDING = "images", "masks", "segs", "records", ".pending"
PROPOSALS = "proposals"
SEG_SUFFIX = ".seg.dcm"
# a lock file created exclusively (holds on NFS/SMB, where flock may be advisory or absent: lockfile.py);
# not ".lock", which versions that used flock left behind for good
LOCK_NAME = ".store.lock"
LOCK_TIMEOUT_S = 60.0  # another accept holds it for well under a second
LOCK_STALE_S = 120.0  # a lock file unchanged this long is a dead holder's (holders refresh it in long work)
MAX_RECORD_BYTES = 1 << 20
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")
_CONTENT_FILE = re.compile(r"^(?P<case>.+)\.[0-9a-f]{16}(\.png|\.tif|\.dcm|\.seg\.dcm)$")
MAX_NAME = 200  # the longest stored name: <name>.<16 hex>.seg.dcm stays under the 255-byte limit


class CorrectionsError(ValueError):
    """A stored case is garbled or inconsistent; the message names the case and the file."""


def safe_case_id(name: str) -> str:
    cleaned = _SAFE_ID.sub("_", name).strip("._")
    return cleaned or "case"


def store_name(case_id: str) -> str:
    """The one stored name of ``case_id``: itself when it is a clean name, else cleaned + a hash of the exact id.

    Clean names (every name this store wrote before) map to themselves, so old stores keep their
    names; the function is idempotent on its own output.
    """
    cleaned = safe_case_id(case_id)
    if cleaned == case_id and len(cleaned) <= MAX_NAME:
        return cleaned
    digest = hashlib.sha256(case_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{cleaned[: MAX_NAME - 14]}-h{digest}"


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
    # how the mask is drawn; records written before conventions existed were all lung fields.
    # A fine-tune trains each case only as its own convention.
    convention: ConventionName = DEFAULT_CONVENTION
    # the files this accept wrote, by name and content: set by CorrectionsStore.add
    image_file: str = ""
    mask_file: str = ""
    image_file_sha256: str = ""
    mask_file_sha256: str = ""
    # a DICOM case's SEG of the accepted labels ("" for other cases, and for records before SEGs)
    seg_file: str = ""
    seg_file_sha256: str = ""
    # the model's proposal kept beside the mask (ProposalKept): "" / None on records without one
    proposal_file: str = ""
    proposal_file_sha256: str = ""
    proposal_model_version: str = ""
    proposal_convention: ConventionName | None = None
    # the proposal's expected Dice (nn/quality.py) when the model proposed it; None for records before issue 29
    proposal_expected_dice: float | None = None


@dataclass(frozen=True)
class ProposalKept:
    """The model's proposal for an accepted case, as the dock showed it before any edit: labels 0/1/2 of the
    image's shape, the version of the model that drew it, and the convention it was drawn in."""

    labels: np.ndarray
    model_version: str
    convention: ConventionName


_RECORD = TypeAdapter(CorrectionRecord)


@dataclass(frozen=True)
class StoredCase:
    """One accepted case whose image and mask were checked against its record."""

    case_id: str
    image: Path
    mask: Path
    record: CorrectionRecord
    seg: Path | None = None  # the DICOM SEG of this accept, for a DICOM case
    proposal: Path | None = None  # the model's proposal PNG (labels 0/1/2), when the accept kept one

    @property
    def convention(self) -> str:
        return self.record.convention


class CorrectionsStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- reading ---------------------------------------------------------------
    def record_path(self, case_id: str) -> Path:
        return self.root / RECORDS / f"{store_name(case_id)}.json"

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
        if store_name(record.case_id) != store_name(case_id):
            raise CorrectionsError(f"case {case_id}: record {path} is for case {record.case_id!r}")
        return record

    def case(self, case_id: str) -> StoredCase:
        """The case's files, checked against its record: never an image of one accept with the mask of another."""
        record = self.record(case_id)
        case_id = store_name(case_id)
        if not record.image_file:
            return self._legacy_case(case_id, record)
        image = self._named_file(IMAGES, record.image_file, record.image_file_sha256, case_id)
        mask = self._named_file(MASKS, record.mask_file, record.mask_file_sha256, case_id)
        seg = self._named_file(SEGS, record.seg_file, record.seg_file_sha256, case_id) if record.seg_file else None
        proposal = (
            self._named_file(PROPOSALS, record.proposal_file, record.proposal_file_sha256, case_id) if record.proposal_file else None
        )
        return StoredCase(case_id, image, mask, record, seg, proposal)

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
    def add(
        self, image: np.ndarray | str | Path | StoredImage, labels: np.ndarray, record: CorrectionRecord,
        seg: bytes | None = None, proposal: ProposalKept | None = None,
    ) -> str:
        """Store one accepted case as a unit; an earlier accept of the same case is replaced whole. Returns its stored name.

        ``image``: the source file's path (kept as read: see :mod:`.source_image`), or the pixels
        when there is no file. ``seg`` is the encoded DICOM SEG of ``labels`` for a DICOM case: it
        joins the same unit (named by the record), so a reader never gets the SEG of another accept.
        ``proposal``: the model's labels the clinician started from, kept in ``proposals/`` in the same unit;
        without one, the record names none (a re-accept without one drops the earlier proposal with its case).
        """
        if record.convention not in CONVENTIONS:  # a value outside the known set ('sideways') never reaches a record
            raise CorrectionsError(f"case {record.case_id!r}: not stored: unknown lung convention {record.convention!r}; "
                                   f"choose {' or '.join(CONVENTIONS)}")
        source = image if isinstance(image, StoredImage) else stored_image(image)
        name = store_name(record.case_id)
        labels = checked_mask(labels, source.shape, f"case {record.case_id}", binary_255=False)
        mask_png = encode_png(labels.astype(np.uint8))
        record.shape = list(labels.shape)
        record.image_sha256 = source.pixels_sha256
        record.image_file_sha256 = hashlib.sha256(source.data).hexdigest()
        record.mask_file_sha256 = hashlib.sha256(mask_png).hexdigest()
        record.image_file = f"{name}.{record.image_file_sha256[:16]}{source.suffix}"
        record.mask_file = f"{name}.{record.mask_file_sha256[:16]}.png"
        record.seg_file_sha256 = hashlib.sha256(seg).hexdigest() if seg is not None else ""
        record.seg_file = f"{name}.{record.seg_file_sha256[:16]}{SEG_SUFFIX}" if seg is not None else ""
        proposal_png = _name_proposal(record, name, proposal, source.shape)
        self._check_own_folders()  # before anything is written, lock file included
        self.root.mkdir(parents=True, exist_ok=True)
        # one writer at a time: the clean-up below must not delete another accept's uncommitted files
        with self.lock() as lock:
            self._check_own_folders()
            written = [(IMAGES, record.image_file), (MASKS, record.mask_file), (SEGS, record.seg_file), (PROPOSALS, record.proposal_file)]
            # every file this accept writes or replaces, listed before the first write: whatever a kill
            # leaves, the next accept removes exactly those of them that no record names
            replaced = self._replaced_files(name, record.case_id)
            listed = [pair for pair in written + replaced if pair[1]]
            # one intent per accept (a killed accept of the same case may have left one: both are needed)
            atomic_write_json(self.root / PENDING / f"{name}.{uuid.uuid4().hex[:12]}.json", {"case": name, "files": listed})
            atomic_write_bytes(self.root / IMAGES / record.image_file, source.data)
            lock.refresh()  # a large DICOM on a slow share: still working, not a dead holder
            atomic_write_bytes(self.root / MASKS / record.mask_file, mask_png)
            if seg is not None:
                atomic_write_bytes(self.root / SEGS / record.seg_file, seg)
            if proposal_png is not None:
                atomic_write_bytes(self.root / PROPOSALS / record.proposal_file, proposal_png)
            atomic_write_json(self.record_path(name), asdict(record))  # the commit
            self._finish_pending()
        return name

    def lock(self) -> LockFile:
        """The store's lock: one accept (or a fine-tune's snapshot) at a time, across processes and machines."""
        return LockFile(self.root / LOCK_NAME, timeout=LOCK_TIMEOUT_S, stale_after=LOCK_STALE_S)

    def _check_own_folders(self) -> None:
        """Refuse a store whose sub-folder is a symbolic link or a file: it would write (and clean) outside itself."""
        for folder in (IMAGES, MASKS, SEGS, PROPOSALS, RECORDS, PENDING):
            path = self.root / folder
            if path.is_symlink():
                raise CorrectionsError(
                    f"{path} is a symbolic link (to {os.readlink(path)}); the corrections store writes only "
                    "into its own folders: replace the link by a folder"
                )
            if path.exists() and not path.is_dir():
                raise CorrectionsError(f"{path} is not a folder; the corrections store needs it as one")

    def _replaced_files(self, name: str, case_id: str) -> list[tuple[str, str]]:
        """(folder, file) this store wrote for the accept that the new one replaces; none when its record is garbled."""
        if not self.record_path(name).exists():
            return []
        try:
            old = self.record(name)
        except CorrectionsError:
            return []  # keep a garbled case's files for its owner to inspect
        if old.case_id != case_id and old.case_id != name:
            raise CorrectionsError(f"case {case_id!r}: its stored name {name!r} holds case {old.case_id!r}; rename one of them")
        return self._files_of(old, name)

    @staticmethod
    def _files_of(old: CorrectionRecord, name: str) -> list[tuple[str, str]]:
        if not old.image_file:  # the layout before file hashes: <name>.png in images/ and masks/
            return [(IMAGES, f"{name}.png"), (MASKS, f"{name}.png")]
        named = ((IMAGES, old.image_file), (MASKS, old.mask_file), (SEGS, old.seg_file), (PROPOSALS, old.proposal_file))
        return [(folder, file) for folder, file in named if file]

    def _finish_pending(self) -> None:
        """Remove what killed accepts wrote but never committed (each listed its files first), then temp files."""
        pending = self.root / PENDING
        if pending.is_dir():
            for entry in os.scandir(pending):
                if not (entry.name.endswith(".json") and entry.is_file(follow_symlinks=False)):
                    continue
                try:
                    listed = json.loads(Path(entry.path).read_text(encoding="utf-8"))
                    kept = self._named_now(str(listed["case"]))
                    files = [(str(folder), str(file)) for folder, file in listed["files"]]
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # not an intent this store wrote: leave it
                if kept is not None:
                    for folder, file in files:
                        plain = file == Path(file).name and not file.startswith(".")
                        if folder in (IMAGES, MASKS, SEGS, PROPOSALS) and plain and (folder, file) not in kept:
                            _unlink_file(self.root / folder / file)
                _unlink_file(Path(entry.path))
        for folder in (IMAGES, MASKS, SEGS, PROPOSALS, RECORDS, PENDING):
            remove_leftovers(self.root / folder)  # only atomic_path's own temp names

    def _named_now(self, name: str) -> set[tuple[str, str]] | None:
        """(folder, file) the case's committed record names; None when its record is garbled (touch nothing).

        By folder: a proposal equal to the mask has the mask's file name, in another folder; and a record of
        the layout before file hashes names its ``<name>.png`` files, which a killed re-accept listed as replaced.
        """
        if not self.record_path(name).exists():
            return set()
        try:
            rec = self.record(name)
        except CorrectionsError:
            return None
        return set(self._files_of(rec, name))


def _name_proposal(record: CorrectionRecord, name: str, proposal: ProposalKept | None, shape: tuple[int, ...]) -> bytes | None:
    """The proposal's PNG, its name, hash, version and convention set in ``record``; all empty without one.

    Checked as the mask is, before anything is written: a bad proposal refuses the accept by name.
    """
    record.proposal_file = record.proposal_file_sha256 = record.proposal_model_version = ""
    record.proposal_convention = None
    if proposal is None:
        return None
    what = f"case {record.case_id}: proposal"
    labels = checked_mask(proposal.labels, shape, what, binary_255=False)
    if not (isinstance(proposal.model_version, str) and proposal.model_version.strip()):
        raise CorrectionsError(f"{what} has no model version; a kept proposal names the model that drew it")
    try:
        convention = check_convention(proposal.convention)
    except ConventionError as exc:
        raise CorrectionsError(f"{what}: {exc}") from None
    png = encode_png(labels.astype(np.uint8))
    record.proposal_file_sha256 = hashlib.sha256(png).hexdigest()
    record.proposal_file = f"{name}.{record.proposal_file_sha256[:16]}.png"
    record.proposal_model_version = proposal.model_version
    record.proposal_convention = convention
    return png


def _unlink_file(path: Path) -> None:
    """Delete a file (or a symbolic link itself, never its target); leave a folder alone."""
    try:
        os.unlink(path)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        pass
