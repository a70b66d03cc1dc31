"""A real Orthanc PACS with its DICOMweb plugin, on free ports with temporary storage, for tests.

Installed in CI by .ci/run (``apt-get install orthanc orthanc-dicomweb``). Basic auth is on,
so the tests can check both the authenticated path and a 401.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "lung", "unet-test-secret"


@dataclass
class Orthanc:
    url: str  # http://127.0.0.1:PORT

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str]:
        return (USER, PASSWORD)

    def store(self, path: Path) -> dict:
        """Store one DICOM file through Orthanc's REST API (the test's PACS setup, not the product)."""
        response = requests.post(f"{self.url}/instances", data=path.read_bytes(), auth=self.auth, timeout=30)
        response.raise_for_status()
        return response.json()

    def instances_of_study(self, study_uid: str) -> list[bytes]:
        """Every stored instance of a study, as the DICOM files Orthanc holds."""
        found = requests.post(
            f"{self.url}/tools/find", json={"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}},
            auth=self.auth, timeout=30,
        ).json()
        return [requests.get(f"{self.url}/instances/{i}/file", auth=self.auth, timeout=30).content for i in found]


def available() -> bool:
    return shutil.which("Orthanc") is not None and PLUGIN.is_file()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_orthanc(folder: Path) -> Iterator[Orthanc]:
    """Start Orthanc with storage in ``folder``; stop it (by its own process id) afterwards."""
    http_port, dicom_port = _free_port(), _free_port()
    config = {
        "Name": "lung-unet-tests",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "Plugins": [str(PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "HttpTimeout": 30,
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "wb")
    process = subprocess.Popen(["Orthanc", str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    server = Orthanc(f"http://127.0.0.1:{http_port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{server.url}/system", auth=server.auth, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc did not start: {(folder / 'orthanc.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
