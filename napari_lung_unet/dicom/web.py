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
from typing import TYPE_CHECKING, Any, TypeVar

from ..settings import SettingError

if TYPE_CHECKING:  # dicomweb-client and requests load lazily, only for DICOMweb inputs
    from dicomweb_client import DICOMwebClient

    from .net import Session
    from .wado import Skipped

T = TypeVar("T")

TOKEN_ENV = "LUNG_UNET_DICOMWEB_TOKEN"
USER_ENV = "LUNG_UNET_DICOMWEB_USER"
PASSWORD_ENV = "LUNG_UNET_DICOMWEB_PASSWORD"

_STUDY_URL = re.compile(r"^(?P<root>https?://.+?)/studies/(?P<study>[0-9.]+)/?$")
_UID = re.compile(r"^[0-9.]{1,64}$")  # a UID goes into a URL and a file name: digits and dots only


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


def connect(root: str, session: Session | None = None) -> DICOMwebClient:
    """A client for ``root`` with the credentials from the environment, the deadlines and no retries."""
    from dicomweb_client import DICOMwebClient

    client = DICOMwebClient(root, session=session or _session())
    client.set_http_retry_params(retry=False)  # a back-off turned a refused connection into 30 s
    return client


def _session() -> Session:
    from .net import Session

    try:
        session = Session()
    except SettingError as exc:  # the dialog shows DicomWebError's line as it is
        raise DicomWebError(str(exc)) from None
    token = os.environ.get(TOKEN_ENV, "").strip()
    user = os.environ.get(USER_ENV, "")
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    elif user:
        session.auth = (user, os.environ.get(PASSWORD_ENV, ""))
    return session


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
    found = _call(root, "listing studies", lambda: _dicom_json(root, client.search_for_studies(
        limit=limit, fields=["PatientName", "PatientID", "StudyDate", "ModalitiesInStudy", "StudyDescription"],
    )))
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

    Instances are kept as the PACS sends them (``transfer-syntax=*``), byte for byte: the local
    reader decodes every syntax CR/DX archives use. Each is streamed to its file, and its header
    is checked (pixel budget, frames, decoder) before a pixel is written: a report, a SEG, or an
    image the reader would refuse is skipped with a note instead.
    """
    session = _session()
    client = connect(url.root, session)
    instances = _call(url, "searching the study", lambda: _dicom_json(
        url, client.search_for_instances(study_instance_uid=url.study)))
    if not instances:
        raise DicomWebError(f"{url}: study not found on the server")
    saved, notes, kinds, refusals = [], [], [], []
    for found in instances:
        series, sop = _value(found, "0020000E"), _value(found, "00080018")
        if not _UID.match(series) or not _UID.match(sop):
            raise DicomWebError(f"{url}: the server's search result has a malformed UID ({sop!r})")
        result = _call(url, f"retrieving instance {sop}", lambda: _retrieve(session, url, series, sop, folder / f"{sop}.dcm"))
        if isinstance(result, Path):
            saved.append(result)
            continue
        notes.append(f"note: {url}: skipping instance {sop}: {result.reason}")
        (kinds if result.reason.endswith("not an image") else refusals).append((sop, result.reason))
    if not saved:
        if refusals:
            sop, reason = refusals[0]
            raise DicomWebError(f"{url}: study has no readable images (instance {sop}: {reason})")
        held = sorted({reason.removeprefix("a ").removesuffix(", not an image") for _, reason in kinds})
        raise DicomWebError(f"{url}: study has no images (it holds: {', '.join(held)})")
    return saved, notes


def _retrieve(session: Session, url: StudyUrl, series: str, sop: str, target: Path) -> Path | Skipped:
    """WADO-RS of one instance, streamed into ``target`` (:mod:`napari_lung_unet.dicom.wado`)."""
    from .wado import ACCEPT, NotDicom, save_instance

    address = f"{url.root}/studies/{url.study}/series/{series}/instances/{sop}"
    with session.get(address, headers={"Accept": ACCEPT}, stream=True) as response:
        response.raise_for_status()
        try:
            return save_instance(response, target, f"instance {sop}")
        except NotDicom as exc:
            target.unlink(missing_ok=True)
            raise DicomWebError(f"{url}: {exc}") from None
        except BaseException:
            target.unlink(missing_ok=True)
            raise


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
    """Run one DICOMweb call within its deadline; turn every transport, HTTP and format failure into one line.

    ``url`` is the study (or, for server-wide requests, the root) the message names.
    """
    import requests

    from .net import DEADLINE_ENV, deadline

    with deadline() as watch:
        try:
            return request()
        except DicomWebError:
            raise
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (401, 403):
                how = f"set {TOKEN_ENV}, or {USER_ENV} and {PASSWORD_ENV}"
                raise DicomWebError(f"{url}: the server refused access while {doing} (HTTP {status}); {how}") from None
            if status == 404:
                raise DicomWebError(f"{url}: not found on the server while {doing} (HTTP 404)") from None
            raise DicomWebError(f"{url}: the server failed while {doing} (HTTP {status})") from None
        except Exception as exc:  # the socket was shut by the deadline, or the answer was not what DICOMweb sends
            # the socket's own read timeout backs the watch up, a moment after the deadline
            if watch.expired or isinstance(exc, requests.ReadTimeout):
                raise DicomWebError(
                    f"{url}: no complete answer within {watch.seconds:g} s while {doing}; "
                    f"set {DEADLINE_ENV} to wait longer"
                ) from None
            if isinstance(exc, requests.JSONDecodeError):  # before ConnectionError: requests' JSON error is one too
                raise DicomWebError(f"{url}: the server's answer while {doing} is not DICOM JSON "
                                    f"(it starts {_start(exc.doc)})") from None
            if isinstance(exc, (requests.RequestException, OSError)):
                raise DicomWebError(_transport_failure(url, doing, exc)) from None
            raise


def _transport_failure(url: StudyUrl | str, doing: str, exc: Exception) -> str:
    """One line for a failed connection or read: refused, host unknown, no connection in time, or cut off."""
    import requests

    root = url.root if isinstance(url, StudyUrl) else url
    text = repr(exc)
    if isinstance(exc, requests.ConnectTimeout):
        return f"{root}: server unreachable while {doing} (no connection within {_connect_seconds()} s)"
    if "NameResolutionError" in text or "Name or service not known" in text or "nodename nor servname" in text:
        from urllib.parse import urlparse

        host = urlparse(getattr(getattr(exc, "request", None), "url", None) or root).hostname
        return f"{root}: cannot resolve the host name {host} while {doing}"
    if "Connection refused" in text or "ConnectionRefusedError" in text:
        return f"{root}: server unreachable while {doing} (connection refused)"
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)) or "IncompleteRead" in text:
        return f"{url}: the answer was cut off while {doing} ({type(exc).__name__})"
    # reset or closed before an answer came: a server that accepted and then went away
    why = "connection reset" if "ConnectionResetError" in text or "RemoteDisconnected" in text else type(exc).__name__
    return f"{root}: server unreachable while {doing} ({why})"


def _connect_seconds() -> str:
    from .net import connect_timeout

    return f"{connect_timeout():g}"


def _dicom_json(url: StudyUrl | str, found: Any) -> list[dict]:
    """A search result must be a list of DICOM JSON objects; anything else is the server's fault."""
    if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
        raise DicomWebError(f"{url}: the server's search result is not a list of DICOM JSON objects (got {type(found).__name__})")
    return found


def _start(text: str) -> str:
    return repr(text[:40]) if text else "empty"


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
