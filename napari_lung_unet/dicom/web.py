"""A PACS over DICOMweb: fetch a study's X-rays (QIDO-RS + WADO-RS) and store SEGs back (STOW-RS).

Credentials come from the environment, never the command line (where `ps` and shell history
would show them): ``LUNG_UNET_DICOMWEB_TOKEN`` (a bearer token), or ``LUNG_UNET_DICOMWEB_USER``
with ``LUNG_UNET_DICOMWEB_PASSWORD`` (basic auth). Every failure is one :class:`DicomWebError`
line naming the server or study, raised before anything is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # dicomweb-client loads lazily, only for DICOMweb inputs
    from dicomweb_client import DICOMwebClient

T = TypeVar("T")

TOKEN_ENV = "LUNG_UNET_DICOMWEB_TOKEN"
USER_ENV = "LUNG_UNET_DICOMWEB_USER"
PASSWORD_ENV = "LUNG_UNET_DICOMWEB_PASSWORD"

_STUDY_URL = re.compile(r"^(?P<root>https?://.+?)/studies/(?P<study>[0-9.]+)/?$")


class DicomWebError(ValueError):
    """The DICOMweb server or study cannot be used; the message says why, in one line."""


@dataclass(frozen=True)
class StudyUrl:
    root: str  # the DICOMweb service root, e.g. http://pacs:8042/dicom-web
    study: str  # StudyInstanceUID

    def __str__(self) -> str:
        return f"{self.root}/studies/{self.study}"


def is_study_url(text: str) -> bool:
    return bool(re.match(r"^https?://", str(text)))


def parse_study_url(text: str) -> StudyUrl:
    match = _STUDY_URL.match(str(text).strip())
    if not match:
        raise DicomWebError(f"{text}: not a DICOMweb study URL (expected <root>/studies/<StudyInstanceUID>)")
    return StudyUrl(match["root"].rstrip("/"), match["study"])


def connect(root: str) -> DICOMwebClient:
    """A client for ``root`` with the credentials from the environment."""
    import requests
    from dicomweb_client import DICOMwebClient

    session = requests.Session()
    token = os.environ.get(TOKEN_ENV, "").strip()
    user = os.environ.get(USER_ENV, "")
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    elif user:
        session.auth = (user, os.environ.get(PASSWORD_ENV, ""))
    return DICOMwebClient(root, session=session, timeout=30)


@dataclass(frozen=True)
class StudySummary:
    """One row of a PACS worklist (what "Open from PACS..." shows before anything is fetched)."""

    url: StudyUrl
    patient: str
    date: str  # YYYYMMDD as DICOM stores it
    modalities: tuple[str, ...]
    description: str


def list_studies(root: str, limit: int = 200) -> list[StudySummary]:
    """The server's studies (QIDO-RS), newest first, at most ``limit``."""
    root = root.rstrip("/")
    client = connect(root)
    found = _call(root, "listing studies", lambda: client.search_for_studies(
        limit=limit, fields=["PatientName", "PatientID", "StudyDate", "ModalitiesInStudy", "StudyDescription"],
    ))
    rows = [
        StudySummary(
            url=StudyUrl(root, _value(study, "0020000D")),
            patient=_text(study, "00100010") or _text(study, "00100020"),
            date=_text(study, "00080020"),
            modalities=tuple(str(v) for v in study.get("00080061", {}).get("Value", [])),
            description=_text(study, "00081030"),
        )
        for study in found
    ]
    return sorted(rows, key=lambda row: row.date, reverse=True)


def fetch_study(url: StudyUrl, folder: Path) -> tuple[list[Path], list[str]]:
    """Save the study's X-rays to ``folder`` as ``<SOPInstanceUID>.dcm``; return them and a note per skipped instance.

    Instances are kept in the transfer syntax the PACS stored (``transfer-syntax=*``): the local
    reader decodes every syntax CR/DX archives use, and recompression would only cost time.
    """
    from pydicom.uid import SegmentationStorage

    client = connect(url.root)
    instances = _call(url, "searching the study", lambda: client.search_for_instances(study_instance_uid=url.study))
    if not instances:
        raise DicomWebError(f"{url}: study not found on the server")
    saved, notes, skipped = [], [], []
    for found in instances:
        series, sop = _value(found, "0020000E"), _value(found, "00080018")
        ds = _call(url, f"retrieving instance {sop}", lambda: client.retrieve_instance(
            url.study, series, sop, media_types=(("application/dicom", "*"),),
        ))
        kind = str(getattr(ds, "SOPClassUID", "unknown SOP class"))
        if "PixelData" not in ds or kind == SegmentationStorage:
            name = getattr(getattr(ds, "SOPClassUID", None), "name", kind)
            skipped.append(name)
            notes.append(f"note: {url}: skipping instance {sop}: a {name}, not an image")
            continue
        path = folder / f"{sop}.dcm"
        ds.save_as(path, enforce_file_format=True)
        saved.append(path)
    if not saved:
        raise DicomWebError(f"{url}: study has no images (it holds: {', '.join(sorted(set(skipped)))})")
    return saved, notes


def store(url: StudyUrl, paths: list[Path]) -> None:
    """Store the DICOM files (SEGs) into the study with one STOW-RS request, so they land all or none."""
    import pydicom

    client = connect(url.root)
    datasets = [pydicom.dcmread(p) for p in paths]
    result = _call(url, "storing the SEGs", lambda: client.store_instances(datasets, study_instance_uid=url.study))
    failed = list(getattr(result, "FailedSOPSequence", []))
    if failed:
        raise DicomWebError(f"{url}: the server refused {len(failed)} of {len(datasets)} SEG(s) (STOW-RS failure)")


def _call(url: StudyUrl | str, doing: str, request: Callable[[], T]) -> T:
    """Run one DICOMweb request; turn transport and HTTP failures into a one-line DicomWebError.

    ``url`` is the study (or, for server-wide requests, the root) the message names.
    """
    import requests

    try:
        return request()
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            how = f"set {TOKEN_ENV}, or {USER_ENV} and {PASSWORD_ENV}"
            raise DicomWebError(f"{url}: the server refused access while {doing} (HTTP {status}); {how}") from None
        if status == 404:
            raise DicomWebError(f"{url}: not found on the server while {doing} (HTTP 404)") from None
        raise DicomWebError(f"{url}: the server failed while {doing} (HTTP {status})") from None
    except requests.RequestException as exc:
        root = url.root if isinstance(url, StudyUrl) else url
        raise DicomWebError(f"{root}: server unreachable while {doing} ({type(exc).__name__})") from None


def _text(attributes: dict, tag: str) -> str:
    """A DICOM JSON attribute as display text ('' when absent); person names give their alphabetic form."""
    values = attributes.get(tag, {}).get("Value", [])
    if not values:
        return ""
    first = values[0]
    return str(first.get("Alphabetic", "")) if isinstance(first, dict) else str(first)


def _value(attributes: dict, tag: str) -> str:
    try:
        return str(attributes[tag]["Value"][0])
    except (KeyError, IndexError) as exc:
        raise DicomWebError(f"the server's search result lacks tag {tag}") from exc
