"""A DICOMweb fetch's download folder (issue 31 #6): removed on SIGTERM, and a SIGKILL's leftover removed by the next run.

A real ``lung-unet predict <study URL>`` process fetches from a real HTTP server on 127.0.0.1 that
trickles the instance, so the signal lands mid-download.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_files import write_radiograph
from dicomweb_server import FaultyPacs, running_pacs

from napari_lung_unet.batch.dicomweb_studies import DOWNLOAD_PREFIX
from napari_lung_unet.cli import main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM and SIGKILL as POSIX has them")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[FaultyPacs, pydicom.Dataset]]:
    """A server on 127.0.0.1 holding one small real radiograph."""
    image = (np.random.default_rng(1).random((80, 64)) * 255).astype(np.uint8)
    with running_pacs() as server:
        yield server, server.add(write_radiograph(tmp_path / "one.dcm", image).read_bytes())


def _lung_unet() -> list[str]:
    exe = Path(sys.executable).with_name("lung-unet")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "napari_lung_unet.cli"]


def _fetching(pacs: FaultyPacs, study: pydicom.Dataset, tmp_path: Path, model: Path) -> tuple[subprocess.Popen, Path]:
    """A predict process mid-download (its folder made, an instance trickling in), and its TMPDIR."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    pacs.fault, pacs.wado_only, pacs.trickle_every_s = "trickle", True, 0.05
    command = [*_lung_unet(), "predict", pacs.study_url(study.StudyInstanceUID), "-o", str(tmp_path / "out"),
               "--model", str(model), "--device", "cpu"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmpdir)})
    deadline = time.monotonic() + 60
    while not (any("/instances/" in r for r in pacs.requests) and list(tmpdir.glob(f"{DOWNLOAD_PREFIX}*"))):
        assert proc.poll() is None and time.monotonic() < deadline, "the fetch never started"
        time.sleep(0.02)
    return proc, tmpdir


def test_sigterm_mid_download_removes_the_download_folder(
    served: tuple[FaultyPacs, pydicom.Dataset], tmp_path: Path, tiny_model_dir: Path,
) -> None:
    pacs, study = served
    proc, tmpdir = _fetching(pacs, study, tmp_path, tiny_model_dir)
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None and proc.stderr.read().strip().endswith("terminated")
    assert list(tmpdir.iterdir()) == []


def test_the_next_run_removes_what_a_killed_one_left(
    served: tuple[FaultyPacs, pydicom.Dataset], tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pacs, study = served
    proc, tmpdir = _fetching(pacs, study, tmp_path, tiny_model_dir)
    proc.kill()  # SIGKILL: nothing of the process runs, its folder stays
    proc.wait(timeout=20)
    (left,) = tmpdir.iterdir()
    assert left.name.startswith(f"{DOWNLOAD_PREFIX}{proc.pid}-")
    alive = tmpdir / f"{DOWNLOAD_PREFIX}{os.getppid()}-other"  # another user's run, still going: kept
    alive.mkdir()

    pacs.fault = None
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    out = tmp_path / "out2"
    assert main(["predict", pacs.study_url(study.StudyInstanceUID), "-o", str(out), "--model", str(tiny_model_dir),
                 "--device", "cpu"]) == 0
    assert (out / f"{study.SOPInstanceUID}.png").is_file()
    assert list(tmpdir.iterdir()) == [alive]
