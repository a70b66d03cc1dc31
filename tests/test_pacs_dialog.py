""""Open from PACS…" in the dock, against a real Orthanc: list studies, open them as a worklist,
accept a corrected case and find its SEG in the PACS study; the GUI thread never waits on the network."""

from __future__ import annotations

import socket
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_files import reference_xray, write_radiograph
from test_corrections_seg import _labels
from test_dicom_seg import segment_masks
from test_dicomweb import CASES, credentials, orthanc  # noqa: F401 - the real Orthanc fixtures
from orthanc import Orthanc

from napari_lung_unet._folder_reader import PLUGIN, WIDGET
from napari_lung_unet.store.corrections import CorrectionsStore
from napari_lung_unet.dicom.web import PASSWORD_ENV, USER_ENV
from napari_lung_unet.dicom.pacs_worklist import PACS_DIR
from napari_lung_unet.settings import corrections_dir
from napari_lung_unet.widget.pacs_dialog import PacsDialog

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]
WAIT_MS = 120_000


@pytest.fixture
def pacs_studies(orthanc: Orthanc, tmp_path: Path) -> dict[str, tuple[pydicom.Dataset, np.ndarray]]:
    """Two new studies in the PACS (one JPEG 2000) of the shipped CC BY X-rays: header and 0/1/2 labels by SOP UID."""
    stored = {}
    for case, syntax in CASES.items():
        image, truth = reference_xray(case)
        path = write_radiograph(tmp_path / f"{case}.dcm", image, syntax, StudyDescription=f"Chest PA {case}")
        orthanc.store(path)
        header = pydicom.dcmread(path, stop_before_pixels=True)
        stored[str(header.SOPInstanceUID)] = (header, _labels(truth))
    return stored


def _dock(make_napari_viewer):
    viewer = make_napari_viewer()
    _dock_widget, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return widget


def _dialog(widget) -> PacsDialog:
    widget.worklist_panel.pacs_button.click()
    dialog = widget.findChild(PacsDialog)
    assert dialog is not None and dialog.isVisible()
    return dialog


def _list(qtbot, dialog: PacsDialog, url: str) -> None:
    dialog.url.setText(url)
    dialog.list_button.click()
    qtbot.waitUntil(lambda: not dialog.busy and dialog.list_button.isEnabled(), timeout=WAIT_MS)


def test_open_from_pacs_then_accept_stores_the_seg_back(
    # the studies (real data) first: without the data the test is skipped before a viewer exists,
    # whose teardown would otherwise look for the report of a call that never ran
    pacs_studies: dict[str, tuple[pydicom.Dataset, np.ndarray]],
    make_napari_viewer, tiny_current, qtbot, orthanc: Orthanc, credentials: None,  # noqa: F811
    isolated_home: Path,
) -> None:
    from qtpy.QtCore import QItemSelectionModel

    widget = _dock(make_napari_viewer)
    dialog = _dialog(widget)
    _list(qtbot, dialog, orthanc.dicomweb)
    studies = {str(header.StudyInstanceUID): header for header, _labels in pacs_studies.values()}
    rows = [row for row, study in enumerate(dialog._studies) if study.url.study in studies]
    assert len(rows) == 2
    for row in rows:  # the QIDO-RS columns, as the clinician reads them
        cells = [dialog.table.item(row, column).text() for column in range(4)]
        assert cells[:3] == ["Test^Patient", "2024-01-01", "DX"] and cells[3].startswith("Chest PA ")
    select = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for row in rows:
        dialog.table.selectionModel().select(dialog.table.model().index(row, 0), select)
    assert not dialog.store_seg.isChecked() and dialog.open_button.isEnabled()  # off by default
    dialog.store_seg.setChecked(True)

    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        dialog.open_button.click()
        assert dialog.busy  # the click returned while the studies were still coming
    review = widget.review
    assert not dialog.isVisible()
    assert review.worklist.folder.parent == isolated_home / PACS_DIR
    assert sorted(case.case_id for case in review.worklist.cases) == sorted(pacs_studies)

    # the clinician corrects the proposal to the real lungs and accepts
    sop = review.case.case_id
    header, labels = pacs_studies[sop]
    widget.lungs_layer().data = labels.copy()
    with qtbot.waitSignal(review.case_accepted, timeout=WAIT_MS):
        review.accept()

    store = CorrectionsStore(corrections_dir())
    [case_id] = store.case_ids()
    local = store.case(case_id).seg
    assert local is not None
    in_pacs = [pydicom.dcmread(BytesIO(raw)) for raw in orthanc.instances_of_study(str(header.StudyInstanceUID))]
    [seg] = [ds for ds in in_pacs if ds.Modality == "SEG"]
    assert seg.SOPInstanceUID == pydicom.dcmread(local, stop_before_pixels=True).SOPInstanceUID  # the store's SEG, not another
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == sop
    np.testing.assert_array_equal(segment_masks(seg), labels)
    # the other study got nothing: its case was not accepted
    other = next(h for s, (h, _l) in pacs_studies.items() if s != sop)
    assert len(orthanc.instances_of_study(str(other.StudyInstanceUID))) == 1


def test_pacs_errors_are_one_line_and_the_gui_never_waits(
    make_napari_viewer, qtbot, orthanc: Orthanc, monkeypatch: pytest.MonkeyPatch, isolated_home: Path, notes,  # noqa: F811
) -> None:
    widget = _dock(make_napari_viewer)
    dialog = _dialog(widget)

    # no credentials: Orthanc answers 401, said in one line that names what to set
    monkeypatch.delenv(USER_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    _list(qtbot, dialog, orthanc.dicomweb)
    assert "HTTP 401" in dialog.status.text() and USER_ENV in dialog.status.text() and "\n" not in dialog.status.text()
    assert any(severity == "error" and "HTTP 401" in message for severity, message in notes)
    assert dialog.table.rowCount() == 0

    # a server that accepts the connection and never answers: the click returns at once
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        dialog.url.setText(f"http://127.0.0.1:{silent.getsockname()[1]}/dicom-web")
        started = time.perf_counter()
        dialog.list_button.click()
        assert time.perf_counter() - started < 0.5
        qtbot.wait(300)  # the event loop runs while the request hangs
        assert dialog.busy and not dialog.list_button.isEnabled()
    # closing the listening socket resets the waiting connection
    qtbot.waitUntil(lambda: not dialog.busy and dialog.list_button.isEnabled(), timeout=WAIT_MS)
    assert "server unreachable while listing studies" in dialog.status.text()

    dialog.url.setText("pacs.example.org")
    dialog.list_button.click()
    assert dialog.status.text().startswith("Enter the server's DICOMweb URL")
    assert not (isolated_home / PACS_DIR).exists()  # nothing was fetched by any of it
