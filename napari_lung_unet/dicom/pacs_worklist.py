"""A PACS worklist: chosen DICOMweb studies fetched into a local folder that opens like any folder.

No Qt here: the dock's "Open from PACS…" runs :func:`fetch_worklist` in a worker and opens the
folder it returns with the same code as "Open folder…", so a PACS worklist keeps its statuses,
proposals and drafts like a local one. The folder is named after the server and the studies
(``$LUNG_UNET_HOME/pacs/<hash>/``), so opening the same studies again continues the review.

The folder also holds :data:`PACS_FILE`, naming the server and whether accepted cases' SEGs go
back to it; the accept worker reads it (:func:`store_seg_back`), so no GUI state is needed there.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..settings import home_dir
from ..store.atomic import atomic_write_json
from .web import DicomWebError, StudyUrl, fetch_study, store

PACS_DIR = "pacs"
PACS_FILE = ".lung_unet_pacs.json"  # hidden: the worklist lists only image files, never this


@dataclass(frozen=True)
class PacsSource:
    root: str  # the DICOMweb service root the studies came from
    studies: tuple[str, ...]  # StudyInstanceUIDs
    store_seg: bool  # Accept stores the case's SEG back into its study (STOW-RS)


def cache_folder(root: str, studies: list[str] | tuple[str, ...]) -> Path:
    key = hashlib.sha256("\n".join([root.rstrip("/"), *sorted(studies)]).encode("utf-8")).hexdigest()[:16]
    return home_dir() / PACS_DIR / key


def fetch_worklist(root: str, studies: list[str] | tuple[str, ...], store_seg: bool) -> tuple[Path, list[str]]:
    """Fetch the studies' X-rays (WADO-RS) into their cache folder; return it and a note per skipped instance.

    Every study is fetched into a temporary folder first and the images move in only when all
    arrived, so a failure (one :class:`DicomWebError` line) leaves the cache as it was.
    """
    root = root.rstrip("/")
    if not studies:
        raise DicomWebError(f"{root}: no study chosen")
    folder = cache_folder(root, studies)
    folder.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix=".incoming-", dir=folder.parent) as tmp:
        fetched: list[Path] = []
        for number, study in enumerate(studies):
            part = Path(tmp) / str(number)
            part.mkdir()
            paths, skipped = fetch_study(StudyUrl(root, study), part)
            fetched += paths
            notes += skipped
        folder.mkdir(exist_ok=True)
        for path in fetched:  # same filesystem: each image appears whole, under its SOP Instance UID
            os.replace(path, folder / path.name)
    atomic_write_json(folder / PACS_FILE, asdict(PacsSource(root, tuple(studies), store_seg)))
    return folder, notes


def pacs_source(folder: Path) -> PacsSource | None:
    """The PACS a worklist folder was fetched from, or None for an ordinary folder."""
    path = folder / PACS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return PacsSource(str(data["root"]), tuple(str(s) for s in data["studies"]), bool(data["store_seg"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DicomWebError(f"{path}: unreadable PACS worklist file ({type(exc).__name__}); open the studies again") from None


def set_store_seg(folder: Path, on: bool) -> None:
    """Turn storing accepted SEGs back into the PACS on or off for this worklist (its own choice)."""
    source = pacs_source(folder)
    if source is None:
        raise DicomWebError(f"{folder}: not a PACS worklist")
    atomic_write_json(folder / PACS_FILE, asdict(PacsSource(source.root, source.studies, on)))


def store_seg_back(folder: Path, seg: Path) -> str | None:
    """Store an accepted case's SEG into its study when ``folder`` is a PACS worklist that asks for it.

    Returns the study URL it went to (None when nothing was to be stored); raises
    :class:`DicomWebError` in one line when the server refuses it or cannot be reached.
    """
    import pydicom

    source = pacs_source(folder)
    if source is None or not source.store_seg:
        return None
    # the SEG lies in its source's study (dicom/seg.py copies it), which is where it must go
    study = StudyUrl(source.root, str(pydicom.dcmread(seg, stop_before_pixels=True).StudyInstanceUID))
    store(study, [seg])
    return str(study)
