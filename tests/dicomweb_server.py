"""A small DICOMweb server on 127.0.0.1 for fault tests: real HTTP, real sockets, real DICOM bytes.

It answers QIDO-RS (study and instance searches, DICOM JSON) and WADO-RS (one instance as
``multipart/related``) for the DICOM files it is given, and can misbehave the way a broken or
hostile PACS does: HTTP 500, an HTML page, broken JSON, a body cut off mid-way, a part that is not
DICOM, a byte every few seconds, or no answer at all. Orthanc (tests/orthanc.py) is the real PACS
for the happy path; it cannot be made to misbehave on purpose.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO

import pydicom

BOUNDARY = "lung-unet-test-boundary"
FAULTS = ("500", "html", "broken-json", "cut-off", "not-dicom", "trickle", "silent")


@dataclass
class FaultyPacs:
    """What the server holds (DICOM files by SOP Instance UID) and how it misbehaves."""

    url: str = ""  # http://127.0.0.1:PORT/dicom-web once running
    files: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, pydicom.Dataset] = field(default_factory=dict)
    fault: str | None = None  # one of FAULTS, or None to behave
    wado_only: bool = False  # misbehave only when an instance is retrieved (searches answer well)
    trickle_every_s: float = 10.0
    requests: list[str] = field(default_factory=list)  # every GET's path, in order
    stop: threading.Event = field(default_factory=threading.Event)

    def add(self, data: bytes, header: pydicom.Dataset | None = None) -> pydicom.Dataset:
        """Serve ``data``; pass its ``header`` for a file pydicom cannot parse cheaply (a Deflated bomb)."""
        ds = header if header is not None else pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
        self.files[str(ds.SOPInstanceUID)] = data
        self.headers[str(ds.SOPInstanceUID)] = ds
        return ds

    def study_url(self, study: str) -> str:
        return f"{self.url}/studies/{study}"

    def _headers(self) -> list[pydicom.Dataset]:
        return list(self.headers.values())


def _json_of(ds: pydicom.Dataset) -> dict:
    return {
        "0020000D": {"vr": "UI", "Value": [str(ds.StudyInstanceUID)]},
        "0020000E": {"vr": "UI", "Value": [str(ds.SeriesInstanceUID)]},
        "00080018": {"vr": "UI", "Value": [str(ds.SOPInstanceUID)]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": str(getattr(ds, "PatientName", ""))}]},
        "00080020": {"vr": "DA", "Value": [str(getattr(ds, "StudyDate", ""))]},
    }


def _handler(pacs: FaultyPacs) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            pacs.requests.append(self.path)
            path = self.path.split("?")[0].rstrip("/")
            parts = path.split("/")
            wado = "instances" in parts and parts[-1] != "instances"  # .../instances/<sop>
            fault = pacs.fault if wado or not pacs.wado_only else None
            if fault == "silent":
                pacs.stop.wait()
                return
            if fault == "trickle":
                self._trickle(pacs.files.get(parts[-1]) if wado else None)
                return
            if fault == "500":
                self._send(500, "text/plain", b"internal error")
                return
            if fault == "html":
                self._send(200, "text/html", b"<html><body><h1>Login</h1></body></html>")
                return
            if wado:
                self._wado(parts[-1], fault)
            else:  # QIDO-RS: /studies or /studies/<uid>/instances
                study = parts[parts.index("studies") + 1] if "studies" in parts and parts[-1] != "studies" else None
                found = [_json_of(ds) for ds in pacs._headers() if study in (None, str(ds.StudyInstanceUID))]
                body = b'[{"0020000D": {"vr": "UI", "Val' if fault == "broken-json" else json.dumps(found).encode()
                self._send(200, "application/dicom+json", body)

        def _wado(self, sop: str, fault: str | None) -> None:
            data = pacs.files.get(sop)
            if data is None:
                self._send(404, "text/plain", b"no such instance")
                return
            if fault == "not-dicom":
                data = b"\x89PNG\r\n\x1a\n" + bytes(4000)
            body = (
                f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                + data + f"\r\n--{BOUNDARY}--\r\n".encode()
            )
            kind = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
            if fault == "cut-off":  # promise the whole body, send a third, hang up
                self._send(200, kind, body[: len(body) // 3], length=len(body))
                self.close_connection = True
                return
            self._send(200, kind, body)

        def _send(self, status: int, kind: str, body: bytes, length: int | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def _trickle(self, instance: bytes | None) -> None:
            """Status line and headers at once, then one byte of body every ``trickle_every_s``.

            For an instance, the body is its multipart part (opening and part headers at once);
            for a search, spaces (valid JSON whitespace).
            """
            self.send_response(200)
            if instance is None:
                self.send_header("Content-Type", "application/dicom+json")
                opening, body = b"", b" " * 100000
            else:
                self.send_header("Content-Type", f'multipart/related; type="application/dicom"; boundary={BOUNDARY}')
                opening, body = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode(), instance
            self.send_header("Content-Length", str(len(opening) + len(body)))
            self.end_headers()
            self.wfile.write(opening)
            self.wfile.flush()
            for at in range(len(body)):
                if pacs.stop.wait(pacs.trickle_every_s):
                    return
                try:
                    self.wfile.write(body[at : at + 1])
                    self.wfile.flush()
                except OSError:  # the client gave up: what the test wants
                    return

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 (socketserver's signature)
        """A client that hangs up early (a refused bomb, a deadline) is what the tests do on purpose: no traceback."""


@contextmanager
def running_pacs() -> Iterator[FaultyPacs]:
    """Serve on a free port of 127.0.0.1 in a thread; stop it (and any trickle) afterwards."""
    pacs = FaultyPacs()
    server = _Server(("127.0.0.1", 0), _handler(pacs))
    pacs.url = f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield pacs
    finally:
        pacs.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
