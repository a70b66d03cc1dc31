"""An accepted DICOM case gets a DICOM SEG in the corrections store, inside the case's one unit.

The X-ray is a real CC BY radiograph shipped with the package, written as a DX file; the accept runs the widget's
own writer (the worker's function, without Qt), and the SEG is read back with pydicom.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pydicom
import pytest
from dicom_files import reference_xray, write_radiograph
from test_dicom_seg import segment_masks

from napari_lung_unet.store.atomic import atomic_write_json
from napari_lung_unet.store.corrections import SEGS, CorrectionRecord, CorrectionsError, CorrectionsStore
from napari_lung_unet.images.read import read_xray
from napari_lung_unet.dicom.pacs_worklist import PACS_FILE
from napari_lung_unet.dicom.seg import seg_convention
from napari_lung_unet.widget.accepting import send_seg_back, write_adhoc, write_case
from napari_lung_unet.store.worklist import Worklist

CASE = "chest"


def _labels(truth: np.ndarray) -> np.ndarray:
    """0/1/2 from a binary lung mask: the image's left half is the patient's right lung."""
    labels = np.zeros(truth.shape, np.uint8)
    half = truth.shape[1] // 2
    labels[:, :half][truth[:, :half]] = 1
    labels[:, half:][truth[:, half:]] = 2
    return labels


@pytest.fixture
def dicom_case(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A worklist folder holding one real X-ray as a DX file (384×384: seconds, not minutes), and its labels."""
    folder = tmp_path / "worklist"
    folder.mkdir()
    image, truth = reference_xray()
    write_radiograph(folder / f"{CASE}.dcm", image)
    return folder, _labels(truth)


def _accept(folder: Path, store: Path, labels: np.ndarray, convention: str = "lung-fields") -> tuple[int, str | None]:
    """What the dock does on Accept: the store entry on its writer, then the SEG back to a PACS worklist."""
    worklist = Worklist(folder)
    case = worklist.cases[0]
    record = CorrectionRecord(f"wl-{case.case_id}", str(case.path.resolve()), "", "v7", 0.1, convention=convention)
    _case_id, n, warning, seg = write_case(store, read_xray(case.path).pixels, labels, record)
    if seg is not None:
        warning = warning or send_seg_back(folder, seg)
    return n, warning


def test_accepted_dicom_case_has_its_seg_in_the_same_unit(dicom_case: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    folder, labels = dicom_case
    store = CorrectionsStore(tmp_path / "store")
    assert _accept(folder, store.root, labels) == (1, None)
    stored = store.case(f"wl-{CASE}")
    assert stored.seg is not None and stored.record.seg_file == stored.seg.name
    seg = pydicom.dcmread(stored.seg)
    source = pydicom.dcmread(folder / f"{CASE}.dcm", stop_before_pixels=True)
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert (seg.Rows, seg.Columns) == (source.Rows, source.Columns)
    np.testing.assert_array_equal(segment_masks(seg), labels)
    # a clinician corrected the model's proposal: DICOM's SEMIAUTOMATIC, with the model named
    assert {s.SegmentAlgorithmType for s in seg.SegmentSequence} == {"SEMIAUTOMATIC"}
    assert seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == "v7"


def test_the_seg_of_an_accepted_case_says_its_convention(dicom_case: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    folder, labels = dicom_case
    store = CorrectionsStore(tmp_path / "store")
    _accept(folder, store.root, labels, convention="whole-lung")
    stored = store.case(f"wl-{CASE}")
    assert stored.record.convention == "whole-lung"
    assert seg_convention(stored.seg) == "whole-lung"
    assert all("whole-lung" in s.SegmentDescription for s in pydicom.dcmread(stored.seg).SegmentSequence)


def test_reaccept_replaces_the_seg_and_a_tampered_seg_is_refused(dicom_case: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    folder, labels = dicom_case
    store = CorrectionsStore(tmp_path / "store")
    _accept(folder, store.root, labels)
    first = store.case(f"wl-{CASE}").seg
    fewer = labels.copy()
    fewer[fewer == 2] = 0
    _accept(folder, store.root, fewer)
    second = store.case(f"wl-{CASE}").seg
    assert second != first and not first.exists()  # the previous accept's SEG went with its record
    assert [p.name for p in (store.root / SEGS).iterdir()] == [second.name]
    np.testing.assert_array_equal(segment_masks(pydicom.dcmread(second)), fewer)
    second.write_bytes(first.name.encode() + second.read_bytes()[64:])
    with pytest.raises(CorrectionsError, match=r"segs/.*does not match its record"):
        store.case(f"wl-{CASE}")


def test_png_case_has_no_seg(tmp_path: Path, xray_folder: Path) -> None:
    image = iio.imread(xray_folder / "case0.png")
    labels = np.zeros(image.shape, np.uint8)
    labels[40:80, 20:60] = 1
    record = CorrectionRecord("", str(xray_folder / "case0.png"), "", "v1", 0.0)
    case_id, n, warning, seg = write_adhoc(tmp_path / "store", image, labels, record, "case0")
    assert (n, warning, seg) == (1, None, None)
    assert CorrectionsStore(tmp_path / "store").case(case_id).seg is None
    assert not (tmp_path / "store" / SEGS).exists()


def test_dicom_without_a_series_uid_is_accepted_with_a_warning(tmp_path: Path) -> None:
    folder = tmp_path / "worklist"
    folder.mkdir()
    image, _truth = reference_xray()
    write_radiograph(folder / f"{CASE}.dcm", image, SeriesInstanceUID="")
    labels = np.zeros(image.shape, np.uint8)
    labels[100:200, 100:200] = 1
    n, warning = _accept(folder, tmp_path / "store", labels)
    assert n == 1 and warning is not None
    assert warning.startswith("accepted without a DICOM SEG: ") and "SeriesInstanceUID" in warning
    assert CorrectionsStore(tmp_path / "store").case(f"wl-{CASE}").seg is None


def test_pacs_worklist_whose_server_is_gone_keeps_the_correction(dicom_case: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """Storing the SEG back is an extra: an unreachable PACS leaves the accepted case whole, with a warning."""
    folder, labels = dicom_case
    atomic_write_json(folder / PACS_FILE, {"root": "http://127.0.0.1:9/dicom-web", "studies": ["1.2.3"], "store_seg": True})
    n, warning = _accept(folder, tmp_path / "store", labels)
    assert n == 1 and warning is not None
    assert warning.startswith("accepted, but the SEG was not stored in the PACS: ") and "server unreachable" in warning
    assert "\n" not in warning
    assert CorrectionsStore(tmp_path / "store").case(f"wl-{CASE}").seg is not None
