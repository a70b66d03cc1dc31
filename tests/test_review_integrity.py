"""The five ways issue 33 found to store what nobody meant, each as a short explicit sequence.

Each is the shrunk form of a sequence the random machine (``tests/review_machine.py``) runs: a
real viewer and dock, a real two-convention U-Net in two registry versions ("a" current, "b"),
worklists whose X-rays share the file name ``img.png`` across folders, and slow results delayed
by wrapping the real worker functions. Each failed on the dock as issue 33 found it, and passes since
the case state machine (``napari_lung_unet/widget/case_life.py``).

Run under a display: ``xvfb-run -a -s "-screen 0 1920x1080x24" pytest tests/test_review_integrity.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from qtpy.QtCore import QTimer

from napari_lung_unet.store.corrections import CorrectionsStore
from napari_lung_unet.widget import strings
from review_machine import (
    CONVENTIONS, PLUGIN, SETTLE_S, VERSIONS, WARDS, WIDGET, Delays, dock_question, make_wards, press_shift_a, settle,
    two_convention_models,
)

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]



@pytest.fixture
def wards(phantom_parent: Path, tmp_path: Path) -> Path:
    """Registry versions "a" (current) and "b", both conventions; the four wards of two cases each."""
    two_convention_models(phantom_parent)
    make_wards(tmp_path / "wards")
    return tmp_path / "wards"


@pytest.fixture
def slow(wards: Path):  # noqa: ANN201 - the Delays
    """Every proposal, refine and accept write held back by 0.4 s (the real functions still run)."""
    delays = Delays(choices=(0.4,))
    delays.install()
    yield delays
    delays.uninstall()


@pytest.fixture
def dock(make_napari_viewer, wards: Path, tmp_path: Path):  # noqa: ANN001, ANN201 - the models first: the Model box shows the current one
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget.device_combo.setCurrentText("cpu")
    widget.state.store_dir = tmp_path / "corrections"
    return widget


def settled(qtbot, widget) -> None:  # noqa: ANN001
    settle(widget, lambda condition, seconds: qtbot.waitUntil(condition, timeout=int(seconds * 1000)))


def open_ward(qtbot, widget, folder: Path) -> None:  # noqa: ANN001
    """Open a worklist folder and wait until its first case shows its proposal (opening may be asynchronous)."""
    widget.review.open_folder(folder)
    qtbot.waitUntil(lambda: widget.review.case is not None, timeout=int(SETTLE_S * 1000))
    settled(qtbot, widget)


def records(widget) -> list:  # noqa: ANN001
    store = CorrectionsStore(widget.state.store_dir)
    return [(store.record(c), iio.imread(store.mask_path(c))) for c in store.case_ids()] if Path(widget.state.store_dir).is_dir() else []


def answer_keep_when_asked(widget) -> QTimer:  # noqa: ANN001
    """Escape on any question the dock asks (the clinician keeps their edits)."""
    timer = QTimer(widget)
    timer.setInterval(10)

    def escape() -> None:
        box = dock_question(widget)
        if box is not None and box.escapeButton() is not None:
            box.escapeButton().click()
        elif box is not None:
            box.reject()
    timer.timeout.connect(escape)
    timer.start()
    return timer


def paint_an_edit(layer) -> np.ndarray:  # noqa: ANN001
    """A brush stroke through napari's paint path that surely changes the mask; returns the edited mask."""
    layer.brush_size = 30
    at = (layer.data.shape[0] // 2, layer.data.shape[1] // 4)
    layer.paint(at, 1 if layer.data[at] != 1 else 2)
    return np.array(layer.data, copy=True)


def test_shift_a_twice_150_ms_apart_stores_only_real_masks(dock, qtbot, wards: Path, slow):
    widget = dock
    open_ward(qtbot, widget, wards / WARDS[0])  # img.png, proposed; other.png has no proposal yet
    shown = np.array(widget.lungs_layer().data, copy=True)
    assert shown.any()
    press_shift_a(widget)  # accepts img.png; other.png opens and its proposal runs (0.4 s)
    pressed = []
    QTimer.singleShot(150, lambda: (press_shift_a(widget), pressed.append(1)))  # the second press, 150 ms later
    qtbot.waitUntil(lambda: bool(pressed), timeout=10_000)
    settled(qtbot, widget)
    stored = records(widget)
    assert stored, "the first press stored nothing"
    for record, mask in stored:
        assert mask.any(), f"{Path(record.source_path).name} stored with an empty mask (model {record.model_version})"
        assert record.model_version in VERSIONS, record.model_version
    assert len(stored) == 1  # other.png was still proposing: nobody saw it
    np.testing.assert_array_equal(stored[0][1], shown)


def test_a_convention_switch_keeps_or_asks_and_the_record_says_the_convention_drawn_in(dock, qtbot, wards: Path):
    widget = dock
    open_ward(qtbot, widget, wards / WARDS[0])  # proposed in lung fields, the model's own
    assert widget.convention.combo.currentData() == CONVENTIONS[0]
    edits = paint_an_edit(widget.lungs_layer())
    keep = answer_keep_when_asked(widget)
    combo = widget.convention.combo
    combo.setCurrentIndex(combo.findData(CONVENTIONS[1]))  # whole lung; Escape if asked
    settled(qtbot, widget)
    keep.stop()
    np.testing.assert_array_equal(widget.lungs_layer().data, edits, err_msg="the edits were replaced without a question")
    press_shift_a(widget)
    settled(qtbot, widget)
    (record, mask), = records(widget)
    np.testing.assert_array_equal(mask, edits)
    assert record.convention == CONVENTIONS[0], "edits drawn on a lung-fields proposal recorded as " + record.convention


def test_a_reproposal_with_another_model_keeps_or_asks(dock, qtbot, wards: Path):
    widget = dock
    open_ward(qtbot, widget, wards / WARDS[0])
    edits = paint_an_edit(widget.lungs_layer())
    keep = answer_keep_when_asked(widget)
    widget.select_model(VERSIONS[1])
    widget.propose_button.click()  # re-propose this case with "b"; Escape if asked
    settled(qtbot, widget)
    keep.stop()
    np.testing.assert_array_equal(widget.lungs_layer().data, edits, err_msg="the edits were replaced without a question")


def test_refine_clicks_queued_on_one_case_never_land_in_the_next(dock, qtbot, wards: Path):
    widget = dock
    open_ward(qtbot, widget, wards / WARDS[0])
    widget.worklist_panel.next.click()  # other.png: proposed, so cached, as every case of a resumed worklist
    settled(qtbot, widget)
    other = np.array(widget.lungs_layer().data, copy=True)
    widget.worklist_panel.previous.click()  # img.png, from the cache
    settled(qtbot, widget)
    assert widget.review.case.path.name == "img.png"
    lungs = widget.lungs_layer()
    centres = [tuple(int(v) for v in np.argwhere(lungs.data == label).mean(axis=0)) for label in (1, 2)]
    before = np.array(lungs.data, copy=True)
    widget.review.refine.click(*centres[0], False)  # "this is not lung": the region around it goes
    settled(qtbot, widget)
    assert np.count_nonzero(lungs.data != before), "a refine click here changes the mask (else the test proves nothing)"
    delays = Delays(choices=(0.3,))  # each refine's answer comes 0.3 s late
    delays.install()
    try:
        for k in range(6):  # queued on img.png
            row, col = centres[k % 2]
            widget.review.refine.click(row + 4 * (k // 2), col, False)
        widget.worklist_panel.next.click()  # other.png opens from the cache while they run
        settled(qtbot, widget)
    finally:
        delays.uninstall()
    assert widget.review.case.path.name == "other.png"
    changed = int(np.count_nonzero(widget.lungs_layer().data != other))
    assert changed == 0, f"refines of img.png changed {changed} px of other.png"


def test_four_img_png_from_four_folders_are_four_cases(dock, qtbot, wards: Path):
    widget = dock
    for ward in WARDS:  # a/ward, b/ward, c/ward a, d/ward_a: each holds its own img.png
        open_ward(qtbot, widget, wards / ward)
        assert widget.review.case.path.name == "img.png"
        press_shift_a(widget)
        settled(qtbot, widget)
    sources = sorted(Path(record.source_path).relative_to(wards.resolve()).as_posix() for record, _mask in records(widget))
    assert sources == sorted(f"{ward}/img.png" for ward in WARDS)


DAMAGED = {
    "top-level list": "[]",
    "cases a list": json.dumps({"format": 1, "cases": []}),
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "convention sideways": json.dumps({"format": 1, "cases": {}, "settings": {"convention": "sideways"}}),
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_worklist_json_opens_with_a_message(dock, qtbot, wards: Path, notes, damage: str):
    widget = dock
    folder = wards / WARDS[0]
    (folder / ".lung_unet").mkdir(exist_ok=True)
    (folder / ".lung_unet" / "worklist.json").write_text(DAMAGED[damage], encoding="utf-8")
    widget.review.open_folder(folder)  # today: AttributeError or RecursionError for the first three
    qtbot.waitUntil(lambda: widget.review.case is not None, timeout=int(SETTLE_S * 1000))
    settled(qtbot, widget)
    assert any("worklist" in message.lower() for _severity, message in notes), notes  # said, naming the worklist
    assert widget.state.convention in (None, *CONVENTIONS), widget.state.convention  # refused where it enters
    press_shift_a(widget)
    settled(qtbot, widget)
    (record, _mask), = records(widget)
    assert record.convention in CONVENTIONS, record.convention


def test_a_reset_while_a_refine_runs_leaves_no_refining_line(dock, qtbot, wards: Path, slow):
    """The bench's open status race (docs/reliability.md): chase(refine, reset, 45 ms) left "Refining…" on
    screen with nothing running, because the dropped refine said nothing."""
    widget = dock
    open_ward(qtbot, widget, wards / WARDS[0])
    lungs = widget.lungs_layer()
    centre = tuple(int(v) for v in np.argwhere(lungs.data == 1).mean(axis=0))
    widget.review.refine.click(*centre, False)  # its answer comes 0.4 s late
    assert widget.status_label.text() == strings.REFINING
    widget.review.reset_to_proposal()  # nothing edited yet: no question, the proposal is back at once
    settled(qtbot, widget)
    assert widget.review.refine.worker is None
    assert widget.status_label.text() == strings.REFINE_DROPPED_REPLACED
    assert np.array_equal(lungs.data, widget.state.proposal())  # the dropped refine wrote nothing


def answer_replace(widget) -> None:  # noqa: ANN001
    """Click "replace" on the open question."""
    from qtpy.QtWidgets import QMessageBox

    box = dock_question(widget)
    assert box is not None, "no question was asked"
    [act] = [b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.DestructiveRole]
    act.click()


def test_a_replace_answer_covers_no_stroke_made_after_it(dock, qtbot, wards: Path, slow):
    """The bench's open no-silent-loss race (docs/reliability.md): 'replace' answered for a convention switch
    while a proposal ran; the switch's proposal, owed until that one ended, took a stroke painted after the answer."""
    widget = dock
    open_ward(qtbot, widget, wards / WARDS[0])
    paint_an_edit(widget.lungs_layer())
    widget.review.propose()  # over the edits: asked
    answer_replace(widget)
    assert widget.state.running  # its answer comes 0.4 s late
    combo = widget.convention.combo
    combo.setCurrentIndex(combo.findData(CONVENTIONS[1]))  # still edited: asked again
    answer_replace(widget)  # whole-lung is owed once the running proposal ends
    layer = widget.lungs_layer()
    at = (layer.data.shape[0] // 2, 3 * layer.data.shape[1] // 4)
    layer.brush_size = 30
    layer.paint(at, 1 if layer.data[at] != 1 else 2)  # a stroke after the answer, while the proposal runs
    after = np.array(layer.data, copy=True)
    keep = answer_keep_when_asked(widget)
    settled(qtbot, widget)
    keep.stop()
    np.testing.assert_array_equal(widget.lungs_layer().data, after, err_msg="a stroke made after 'replace' was replaced")
