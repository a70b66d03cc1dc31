"""DICOMweb servers that misbehave (issue 21, items 1, 6 and 11; issue 20, item 9).

A real HTTP server on 127.0.0.1 (tests/dicomweb_server.py) serves real DICOM files, and fails
the way a broken or hostile PACS does. Each failure must be one line naming the server or
study, within the deadline, with nothing written; a decompression bomb must be refused from its
header in bounded memory.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_files import encoded, radiograph_dataset, write_deflated_bomb, write_radiograph
from dicomweb_server import FaultyPacs, running_pacs

from napari_lung_unet.cli import main
from napari_lung_unet.dicom.net import CONNECT_ENV, DEADLINE_ENV
from napari_lung_unet.dicom.web import DicomWebError, fetch_study, list_studies, parse_study_url

GB = 1024**3


@pytest.fixture
def pacs() -> Iterator[FaultyPacs]:
    with running_pacs() as server:
        yield server


@pytest.fixture
def study(pacs: FaultyPacs, tmp_path: Path) -> pydicom.Dataset:
    """One small real radiograph in the server."""
    image = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    return pacs.add(write_radiograph(tmp_path / "xray.dcm", image).read_bytes())


def predict_error(url: str, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``lung-unet predict URL``; it must fail with one ``error:`` line and write nothing."""
    assert main(["predict", url, "-o", str(out), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: "), err
    assert not out.exists()
    return lines[-1]


@pytest.mark.parametrize(
    ("fault", "wado_only", "says"),
    [
        ("500", False, "the server failed while searching the study (HTTP 500)"),
        ("500", True, "the server failed while retrieving instance"),
        ("html", False, "is not DICOM JSON"),
        ("broken-json", False, "is not DICOM JSON"),
        ("html", True, "not multipart DICOM"),
        ("cut-off", True, "cut off"),
        ("not-dicom", True, "is not DICOM (no DICM prefix"),
    ],
)
def test_a_misbehaving_server_is_one_line_and_writes_nothing(
    pacs: FaultyPacs, study: pydicom.Dataset, fault: str, wado_only: bool, says: str, tmp_path: Path, capsys
) -> None:
    pacs.fault, pacs.wado_only = fault, wado_only
    started = time.monotonic()
    line = predict_error(pacs.study_url(study.StudyInstanceUID), tmp_path / "out", capsys)
    assert says in line and str(study.StudyInstanceUID) in line, line
    assert time.monotonic() - started < 5  # no retries with back-off


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", ["trickle", "silent"])
def test_a_slow_server_fails_at_the_deadline(
    pacs: FaultyPacs, study: pydicom.Dataset, fault: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A byte every 0.5 s keeps every socket read alive; only a total deadline ends it."""
    monkeypatch.setenv(DEADLINE_ENV, "2")
    pacs.fault, pacs.trickle_every_s = fault, 0.5
    out = tmp_path / "out"
    out.mkdir()
    for call in (lambda: list_studies(pacs.url), lambda: fetch_study(parse_study_url(pacs.study_url(study.StudyInstanceUID)), out)):
        started = time.monotonic()
        with pytest.raises(DicomWebError, match=f"no complete answer within 2 s .*{DEADLINE_ENV}"):
            call()
        assert 1.9 < time.monotonic() - started < 4
    assert list(out.iterdir()) == []


@pytest.mark.timeout(60)
def test_the_deadline_covers_an_instance_that_trickles(
    pacs: FaultyPacs, study: pydicom.Dataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(DEADLINE_ENV, "2")
    pacs.fault, pacs.wado_only, pacs.trickle_every_s = "trickle", True, 0.5
    out = tmp_path / "out"
    out.mkdir()
    started = time.monotonic()
    with pytest.raises(DicomWebError, match="no complete answer within 2 s while retrieving instance"):
        fetch_study(parse_study_url(pacs.study_url(study.StudyInstanceUID)), out)
    assert time.monotonic() - started < 4
    assert list(out.iterdir()) == []  # the part-written instance is removed


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(60)
def test_refused_connection_and_unknown_host_are_reported_within_5_s() -> None:
    started = time.monotonic()
    with pytest.raises(DicomWebError, match=r"server unreachable while listing studies \(connection refused\)"):
        list_studies(f"http://127.0.0.1:{_closed_port()}/dicom-web")
    assert time.monotonic() - started < 5
    started = time.monotonic()
    # .invalid never resolves (RFC 6761); the resolver's own timeout is all it may take
    with pytest.raises(DicomWebError, match="cannot resolve the host name no-such-pacs.invalid"):
        list_studies("http://no-such-pacs.invalid/dicom-web")
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("value", ["0", "-3", "inf", "1e400", "nan", "soon"])
def test_network_settings_are_range_checked(value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    for name in (CONNECT_ENV, DEADLINE_ENV):
        monkeypatch.setenv(name, value)
        line = predict_error("http://127.0.0.1:9/dicom-web/studies/1.2.3", tmp_path / "out", capsys)
        assert f"{name}={value!r} is not a number from 0.1 to" in line, line
        monkeypatch.delenv(name)


def test_a_study_served_well_is_fetched_in_its_own_bytes(pacs: FaultyPacs, study: pydicom.Dataset, tmp_path: Path) -> None:
    """The streamed writer keeps the instance exactly as served (no decode, no re-save)."""
    saved, notes = fetch_study(parse_study_url(pacs.study_url(study.StudyInstanceUID)), tmp_path)
    assert notes == [] and [p.name for p in saved] == [f"{study.SOPInstanceUID}.dcm"]
    assert saved[0].read_bytes() == pacs.files[str(study.SOPInstanceUID)]


def test_every_instance_over_the_budget_is_a_note_and_a_study_of_only_those_is_refused(
    pacs: FaultyPacs, study: pydicom.Dataset, tmp_path: Path
) -> None:
    big = radiograph_dataset(np.zeros((64, 64), np.uint16), StudyInstanceUID=study.StudyInstanceUID)
    big.Rows = big.Columns = 6000  # 36 Mpx: over the 25 Mpx default; the pixel data is short, and never read
    pacs.add(encoded(big))
    saved, notes = fetch_study(parse_study_url(pacs.study_url(study.StudyInstanceUID)), tmp_path)
    assert [p.name for p in saved] == [f"{study.SOPInstanceUID}.dcm"]
    [note] = notes
    assert f"skipping instance {big.SOPInstanceUID}: image is 6000×6000 (36.0 Mpx), over the 25.0 Mpx limit" in note


@pytest.mark.slow
def test_a_deflated_bomb_over_dicomweb_is_refused_in_one_line_in_bounded_memory(pacs: FaultyPacs, tmp_path: Path) -> None:
    """Issue 21 #1: a 2 MB Deflated 30000² instance; before, 7.3 GB peak and MemoryError tracebacks."""
    header = radiograph_dataset(np.zeros((32, 32), np.uint16))
    bomb = write_deflated_bomb(tmp_path / "bomb.dcm", 30000, header)
    assert bomb.stat().st_size < 4 * 1024**2
    pacs.add(bomb.read_bytes(), header)
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import json, resource, sys
        from napari_lung_unet.cli import main
        code = main(["predict", {pacs.study_url(header.StudyInstanceUID)!r}, "-o", {str(out)!r}, "--device", "cpu"])
        print(json.dumps([code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024]), file=sys.stderr)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    *lines, last = run.stderr.strip().splitlines()
    code, rss = json.loads(last)
    assert code == 1 and "Traceback" not in run.stderr, run.stderr
    error = [line for line in lines if line.startswith("error: ")]
    assert len(error) == 1 and "study has no readable images" in error[0], run.stderr
    assert "image is 30000×30000 (900.0 Mpx), over the 25.0 Mpx limit" in error[0]
    assert rss < 2 * GB, f"peak RSS {rss / GB:.2f} GB"
    assert not out.exists()


def test_a_convention_the_model_does_not_know_is_refused_before_any_download(
    pacs: FaultyPacs, study: pydicom.Dataset, tmp_path: Path, capsys
) -> None:
    import torch

    from napari_lung_unet.nn.card import ModelCard
    from napari_lung_unet.nn.model import UNet, UNetConfig
    from napari_lung_unet.nn.model_io import save_model

    arch = UNetConfig(base_channels=4, depth=2)
    torch.manual_seed(0)
    model = save_model(tmp_path / "one", UNet(arch), ModelCard(version="lf-only", architecture=arch, input_size=32))
    url, out = pacs.study_url(study.StudyInstanceUID), tmp_path / "out"
    assert main(["predict", url, "-o", str(out), "--device", "cpu", "--model", str(model), "--convention", "whole-lung"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "whole-lung" in err.strip().splitlines()[-1], err
    assert pacs.requests == [] and not out.exists()
