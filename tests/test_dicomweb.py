"""lung-unet predict against a real Orthanc PACS over DICOMweb: fetch, segment, store the SEGs back.

The fixture starts Orthanc (with its DICOMweb plugin and basic auth) on free ports with a
temporary storage folder and stores the studies; the tests read back what the product stored.
"""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pydicom
import pytest
from dicom_files import REFERENCE_CASES, reference_xray, write_radiograph
from orthanc import PASSWORD, USER, Orthanc, available, running_orthanc

from napari_lung_unet.cli import main
from napari_lung_unet.dicom.web import PASSWORD_ENV, USER_ENV

# two CC BY X-rays shipped with the package: one stored as JPEG 2000, one uncompressed
CASES = dict(zip(REFERENCE_CASES, ("jpeg2000", "explicit")))


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Orthanc:
    if not available():
        message = "Orthanc with the DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_ENV, USER)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.fixture
def studies(orthanc: Orthanc, tmp_path: Path) -> dict[str, pydicom.Dataset]:
    """Two studies in the PACS, one image each; keyed by case name, valued by the stored header."""
    stored = {}
    for case, syntax in CASES.items():
        path = write_radiograph(tmp_path / f"{case}.dcm", reference_xray(case)[0], syntax)
        orthanc.store(path)
        stored[case] = pydicom.dcmread(path, stop_before_pixels=True)
    return stored


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def run_predict(*args: str) -> int:
    return main(["predict", *args, "--device", "cpu"])


@pytest.mark.slow
def test_predict_store_seg_round_trip(
    orthanc: Orthanc, studies: dict[str, pydicom.Dataset], credentials: None, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    urls = [f"{orthanc.dicomweb}/studies/{ds.StudyInstanceUID}" for ds in studies.values()]
    assert run_predict(*urls, "--output", str(out), "--store-seg") == 0
    for case, source in studies.items():
        uid = source.SOPInstanceUID
        assert (out / f"{uid}.png").is_file() and (out / f"{uid}.seg.dcm").is_file()
        stored = [pydicom.dcmread(BytesIO(raw)) for raw in orthanc.instances_of_study(source.StudyInstanceUID)]
        [seg] = [ds for ds in stored if ds.Modality == "SEG"]
        assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == uid
        frames = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
        lungs = frames.max(axis=0) > 0
        truth = reference_xray(case)[1]  # the bundled model's lung fields, drawn from the PNG
        assert dice(lungs, truth) >= 0.9, case
        np.testing.assert_array_equal(lungs, iio.imread(out / f"{uid}.png") > 0)


def write_sr(path: Path, study_uid: str | None = None) -> pydicom.Dataset:
    """A Basic Text SR: a real non-image instance, as a report would sit in a PACS study."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = BasicTextSRStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr = Dataset()
    sr.file_meta = meta
    sr.SOPClassUID, sr.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    sr.StudyInstanceUID, sr.SeriesInstanceUID = study_uid or generate_uid(), generate_uid()
    sr.PatientID, sr.Modality, sr.ValueType, sr.ContentSequence = "P2", "SR", "CONTAINER", []
    sr.save_as(path, enforce_file_format=True)
    return sr


def test_list_studies_gives_the_worklist_columns(orthanc: Orthanc, studies: dict[str, pydicom.Dataset], credentials: None) -> None:
    from napari_lung_unet.dicom.web import list_studies

    rows = {row.url.study: row for row in list_studies(orthanc.dicomweb)}
    for source in studies.values():
        row = rows[source.StudyInstanceUID]
        assert str(row.url) == f"{orthanc.dicomweb}/studies/{source.StudyInstanceUID}"
        assert (row.patient, row.date, row.modalities) == ("Test^Patient", "20240101", ("DX",))


@pytest.mark.slow
def test_sr_and_earlier_seg_in_a_study_are_skipped(
    orthanc: Orthanc, studies: dict[str, pydicom.Dataset], credentials: None, tmp_path: Path, capsys
) -> None:
    source = studies[REFERENCE_CASES[1]]
    write_sr(tmp_path / "sr.dcm", source.StudyInstanceUID)
    orthanc.store(tmp_path / "sr.dcm")
    url = f"{orthanc.dicomweb}/studies/{source.StudyInstanceUID}"
    assert run_predict(url, "-o", str(tmp_path / "first"), "--store-seg") == 0
    assert "a Basic Text SR Storage, not an image" in capsys.readouterr().err
    # a second run finds this run's SEG in the study too, and segments only the X-ray again
    assert run_predict(url, "-o", str(tmp_path / "second"), "--seg") == 0
    err = capsys.readouterr().err
    assert "a Segmentation Storage, not an image" in err
    assert sorted(p.name for p in (tmp_path / "second").iterdir()) == [f"{source.SOPInstanceUID}.png", f"{source.SOPInstanceUID}.seg.dcm", "results.csv"]


def test_study_with_only_an_sr_has_no_images(orthanc: Orthanc, credentials: None, tmp_path: Path, capsys) -> None:
    sr = write_sr(tmp_path / "sr.dcm")
    orthanc.store(tmp_path / "sr.dcm")
    out = tmp_path / "out"
    assert run_predict(f"{orthanc.dicomweb}/studies/{sr.StudyInstanceUID}", "-o", str(out), "--store-seg") == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ") and "study has no images" in error and "Basic Text SR" in error
    assert not out.exists()
    assert len(orthanc.instances_of_study(sr.StudyInstanceUID)) == 1  # nothing stored


def test_bad_dicomweb_input_is_one_line_and_writes_nothing(
    orthanc: Orthanc, studies: dict[str, pydicom.Dataset], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    study = next(iter(studies.values())).StudyInstanceUID
    out = tmp_path / "out"

    def error_of(url: str) -> str:
        assert run_predict(url, "-o", str(out), "--store-seg") == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert not out.exists()
        return lines[-1]

    # no credentials in the environment: Orthanc answers 401
    monkeypatch.delenv(USER_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    message = error_of(f"{orthanc.dicomweb}/studies/{study}")
    assert "HTTP 401" in message and USER_ENV in message and study in message

    monkeypatch.setenv(USER_ENV, USER)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    assert "study not found on the server" in error_of(f"{orthanc.dicomweb}/studies/1.2.3.999")
    assert "server unreachable" in error_of(f"http://127.0.0.1:9/dicom-web/studies/{study}")
    assert "not a DICOMweb study URL" in error_of(f"{orthanc.dicomweb}/patients/{study}")
    # the PACS still holds only the two images: nothing was stored by the failed runs
    assert len(orthanc.instances_of_study(study)) == 1
