"""The review loop end to end in a real napari viewer, as a clinician would do it.

Run under a display: ``xvfb-run -a pytest tests/test_review_loop.py``. ``test_take_screenshots``
checks the README's screenshots (taken with the bundled default model, so the proposals look like
real ones) into a temporary folder; with ``LUNG_UNET_SCREENSHOTS=docs/screenshots`` it refreshes them.
"""

from __future__ import annotations

from questions import answer

import json
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from case_open import wait_case_open

from napari_lung_unet.store.corrections import CorrectionsStore
from napari_lung_unet.nn.model_io import load_model
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.images.phantom_radiograph import make_radiograph_phantom
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.settings import corrections_dir
from napari_lung_unet.widget import LungUNetWidget
from napari_lung_unet.store.worklist import ACCEPTED, EDITED, PROPOSED, Worklist

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

PLUGIN, WIDGET = "napari-lung-unet", "Lung U-Net"
WAIT_MS = 120_000
SHOTS = os.environ.get("LUNG_UNET_SCREENSHOTS")




@pytest.fixture
def widget(docked_widget) -> LungUNetWidget:
    return docked_widget


def open_and_wait(qtbot, widget: LungUNetWidget, folder: Path) -> None:
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        assert widget.review.open_folder(folder)


def paint_stroke(layer, centre: tuple[int, int], label: int, radius: int = 6) -> None:
    """A brush stroke through napari's own paint API (history + paint event, as with the mouse)."""
    layer.brush_size = 2 * radius
    layer.paint(centre, label)


def test_review_loop_end_to_end(widget: LungUNetWidget, qtbot, xray_folder: Path):
    viewer, review = widget.viewer, widget.review

    # 1-2. open a worklist of 3 phantoms: the first case opens and its proposal appears by itself
    open_and_wait(qtbot, widget, xray_folder)
    assert widget.worklist_panel.list.count() == 3
    lungs, xray = viewer.layers["lungs"], viewer.layers["x-ray"]
    assert lungs.data.shape == xray.data.shape == (160, 144)
    case0 = review.case
    assert case0.case_id == "case0" and case0.status == PROPOSED and case0.model_version == "tiny"
    assert "tiny" in widget.model_info.text()
    proposal = lungs.data.copy()

    # 3. paint: history and the paint event fire as for a real brush; readouts and status follow
    widget.controls.set_label(1)
    paint_stroke(lungs, (80, 40), 1)
    assert case0.status == EDITED
    assert "px" in widget.readouts.text() and "% of the proposal changed" in widget.readouts.text()
    assert review.stats.areas[1] == np.count_nonzero(lungs.data == 1)
    changed = np.count_nonzero(lungs.data != proposal)
    assert changed > 0 and review.stats.changed == changed

    # 4. Accept: image, mask and record in the store; the case is accepted and the next one opens
    edited = lungs.data.copy()
    with qtbot.waitSignals([widget.proposal_finished, review.case_accepted], timeout=WAIT_MS):
        widget.accept_button.click()  # the write runs in a worker; the next case opens at once
    store = CorrectionsStore(corrections_dir())
    (case_id,) = store.case_ids()
    assert case_id.startswith("worklist-case0-")  # readable: folder and file, then a hash of the source's path
    np.testing.assert_array_equal(iio.imread(store.mask_path(case_id)), edited)
    assert iio.imread(store.image_path(case_id)).shape == (160, 144)
    record = store.record(case_id)
    assert record.model_version == "tiny" and record.source_path.endswith("case0.png")
    assert 0 < record.fraction_changed <= 1 and len(record.image_sha256) == 64 and record.accepted
    assert case0.status == ACCEPTED
    assert review.case.case_id == "case1"
    assert viewer.layers["lungs"].unique_id == lungs.unique_id  # layers are reused, never re-added
    assert [layer.name for layer in viewer.layers] == ["x-ray", "lungs"]

    # re-accepting the same case replaces its entry
    review.open_case(0)
    wait_case_open(qtbot, widget, "case0")  # read off the GUI thread, then shown
    with qtbot.waitSignal(review.case_accepted, timeout=WAIT_MS):
        review.accept()
    assert store.case_ids() == [case_id]

    # 5. edit case 1, go next, come back: status and draft are restored
    wait_case_open(qtbot, widget, "case1")  # the accept opened it, off the GUI thread
    paint_stroke(lungs, (40, 100), 2)
    draft = lungs.data.copy()
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.worklist_panel.next.click()
    assert review.case.case_id == "case2"
    assert not np.array_equal(lungs.data, draft)
    widget.worklist_panel.previous.click()
    wait_case_open(qtbot, widget, "case1")
    assert review.case.case_id == "case1" and review.case.status == EDITED
    np.testing.assert_array_equal(lungs.data, draft)

    # 6. a tiny fine-tune to completion: the registry gains a version; re-propose with it
    before = {c.version for c in Registry().cards()}
    widget.finetune.steps, widget.finetune.no_replay = 3, True
    with qtbot.waitSignal(widget.finetune.finished, timeout=WAIT_MS) as done:
        widget.finetune.button.click()
        assert widget.finetune.running and not widget.finetune.button.isEnabled()
    result = done.args[0]
    assert result is not None and result["parent"] == "tiny"
    assert {c.version for c in Registry().cards()} - before == {result["version"]}
    assert result["version"] in widget.history.versions()
    # the verdict line comes first; the version is named in the details and on Re-propose
    assert result["version"] in widget.finetune.details.text() and not widget.finetune.repropose.isHidden()
    assert result["version"] in widget.finetune.repropose.toolTip()
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS) as proposed:
        widget.finetune.repropose.click()  # case1 is edited: the dock asks before replacing the edits
        answer(widget, act=True)
    assert proposed.args[0].model_version == result["version"]

    # 7. close the viewer with an unsaved edit: the draft is on disk
    paint_stroke(lungs, (100, 30), 1, radius=4)
    unsaved = lungs.data.copy()
    viewer.close()  # returns at once: the dock's writer puts the draft on disk after it
    qtbot.waitUntil(lambda: np.array_equal(Worklist(xray_folder).load_draft("case1", unsaved.shape), unsaved), timeout=WAIT_MS)
    state = json.loads((xray_folder / ".lung_unet" / "worklist.json").read_text())
    assert state["current"] == "case1"
    assert state["cases"]["case0"]["status"] == ACCEPTED


def test_status_resumes_after_restart(make_napari_viewer, tiny_current, qtbot, xray_folder: Path):
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    open_and_wait(qtbot, widget, xray_folder)
    with qtbot.waitSignals([widget.proposal_finished, widget.review.case_accepted], timeout=WAIT_MS):
        widget.review.accept()
    viewer.close()  # returns at once; a restart is another process, which starts after this one's writer ends
    widget.writer.wait()

    viewer2 = make_napari_viewer()
    _dock, widget2 = viewer2.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget2.review.auto_propose = False
    assert widget2.review.open_folder(xray_folder)
    wait_case_open(qtbot, widget2)
    assert widget2.review.case.case_id == "case1"  # resumes where the clinician left off
    assert [c.status for c in widget2.review.worklist.cases][:2] == [ACCEPTED, PROPOSED]
    # the filter hides reviewed cases, and Previous skips them
    widget2.worklist_panel.only_unreviewed.setChecked(True)
    assert widget2.worklist_panel.list.item(0).isHidden()
    assert not widget2.review.step(-1)


def test_quick_controls_shortcuts_and_reset(widget: LungUNetWidget, qtbot, xray_folder: Path):
    open_and_wait(qtbot, widget, xray_folder)
    lungs = widget.viewer.layers["lungs"]
    widget.controls.brush.setValue(17)
    assert lungs.brush_size == 17
    widget.controls.left.click()
    assert lungs.selected_label == 2
    proposal = lungs.data.copy()
    paint_stroke(lungs, (50, 50), 2)
    assert not np.array_equal(lungs.data, proposal)
    painted = lungs.data.copy()
    widget.controls.reset.click()  # over edits, Reset asks first
    answer(widget, act=False)  # the answer Escape gives keeps the edits
    np.testing.assert_array_equal(lungs.data, painted)
    widget.controls.reset.click()
    answer(widget, act=True)
    np.testing.assert_array_equal(lungs.data, proposal)
    assert widget.review.stats.changed == 0
    lungs.undo()  # the reset is one undoable step
    assert not np.array_equal(lungs.data, proposal)
    bindings = {str(key): action for key, action in widget.viewer.keymap.items()}
    assert {"Shift+N", "Shift+P", "Shift+A"} <= set(bindings)
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        bindings["Shift+N"](widget.viewer)
    assert widget.review.case.case_id == "case1"
    bindings["Shift+P"](widget.viewer)
    wait_case_open(qtbot, widget, "case0")
    assert widget.review.case.case_id == "case0" and widget.review.case.status == EDITED


def test_undo_and_redo_update_readouts_and_draft(widget: LungUNetWidget, qtbot, xray_folder: Path):
    open_and_wait(qtbot, widget, xray_folder)
    lungs = widget.viewer.layers["lungs"]
    proposal = lungs.data.copy()
    shown_before = widget.readouts.text()
    paint_stroke(lungs, (50, 50), 2)
    painted, changed = lungs.data.copy(), widget.review.stats.changed
    assert changed > 0 and widget.readouts.text() != shown_before
    lungs.undo()  # napari replays history into the array: no paint event
    np.testing.assert_array_equal(lungs.data, proposal)
    assert widget.review.stats.changed == 0
    assert widget.readouts.text() == shown_before
    widget.review.save_draft_now()
    np.testing.assert_array_equal(Worklist(xray_folder).load_draft("case0", proposal.shape), proposal)
    lungs.redo()
    assert widget.review.stats.changed == changed
    widget.review.save_draft_now()
    np.testing.assert_array_equal(Worklist(xray_folder).load_draft("case0", painted.shape), painted)
    lungs.visible = False  # a refresh that edits nothing leaves the counts alone
    lungs.visible = True
    assert widget.review.stats.changed == changed


def test_single_image_without_worklist_still_works(widget: LungUNetWidget, qtbot):
    widget.viewer.add_image(make_phantom((128, 128), seed=2)[0], name="phantom")
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS) as blocker:
        widget.propose_button.click()
    assert blocker.args[0] is not None
    assert widget.model_info.text().startswith("Proposal by tiny, expected Dice")
    lungs = widget.viewer.layers["lungs (phantom)"]
    paint_stroke(lungs, (64, 64), 1)
    assert "px" in widget.readouts.text()
    assert widget.review.case is None


def test_take_screenshots(make_napari_viewer, qtbot, xray_folder: Path, tmp_path: Path):
    """The README's four screenshots show the window with the dock and the step they are about."""
    out = Path(SHOTS) if SHOTS else tmp_path / "shots"  # LUNG_UNET_SCREENSHOTS=docs/screenshots refreshes the README's
    out.mkdir(parents=True, exist_ok=True)
    for i in range(3):  # radiograph phantoms, bigger than the other tests': these are for people to look at
        iio.imwrite(xray_folder / f"case{i}.png", make_radiograph_phantom((512, 448), seed=20 + i, dtype=np.uint8)[0])
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1500, 1000)
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget.device_combo.setCurrentText("cpu")

    shots: dict[str, np.ndarray] = {}

    def shot(name: str) -> None:
        qtbot.wait(500)
        assert _dock.isVisible() and widget.isVisible(), name  # the dock is in the picture
        viewer.window.screenshot(str(out / f"review_{name}.png"), canvas_only=False)
        shots[name] = iio.imread(out / f"review_{name}.png")
        assert shots[name].shape[1] >= 1000 and shots[name].std() > 10, name  # the whole window, not a blank

    open_and_wait(qtbot, widget, xray_folder)
    assert widget.accept_button.isVisible() and widget.accept_button.isEnabled()
    shot("proposal")
    lungs = viewer.layers["lungs"]
    widget.controls.set_label(2)
    # the clinician fills in what the model missed of the left lung (one undoable edit)
    truth = make_radiograph_phantom((512, 448), seed=20)[1]
    missed = np.nonzero((truth == 2) & (lungs.data == 0))
    assert len(missed[0]) > 0  # the bundled model does miss some of it: there is a correction to show
    lungs.data_setitem(missed, 2)
    shot("correction")
    assert shots["correction"].shape == shots["proposal"].shape
    assert (shots["correction"] != shots["proposal"]).any(axis=-1).sum() > 50  # the filled-in lung shows
    with qtbot.waitSignals([widget.proposal_finished, widget.review.case_accepted], timeout=WAIT_MS):
        widget.accept_button.click()
    paint_stroke(lungs, (250, 110), 1, radius=10)
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.worklist_panel.next.click()
    shot("worklist")
    widget.finetune.steps, widget.finetune.no_replay = 5, True
    with qtbot.waitSignal(widget.finetune.finished, timeout=600_000) as done:
        widget.finetune.button.click()
    assert done.args[0] is not None
    widget.tabs.setCurrentIndex(1)  # the result in plain words and Model history live on the Model tab
    assert widget.finetune.status.isVisible() and widget.finetune.status.text().strip()  # the verdict is on screen
    shot("finetune")
    assert (shots["finetune"] != shots["worklist"]).any(axis=-1).sum() > 1000  # the Model tab, not the same dock
    assert len({image.shape for image in shots.values()}) == 1 and len(shots) == 4


def test_removing_the_lungs_layer_saves_the_draft(widget: LungUNetWidget, qtbot, xray_folder: Path):
    open_and_wait(qtbot, widget, xray_folder)
    lungs = widget.viewer.layers["lungs"]
    paint_stroke(lungs, (60, 60), 2)
    edited = lungs.data.copy()
    widget.viewer.layers.remove("lungs")  # before the autosave timer fires
    # the draft is queued at once and written by the dock's writer thread, never on the GUI thread
    qtbot.waitUntil(lambda: Worklist(xray_folder).load_draft("case0", edited.shape) is not None, timeout=WAIT_MS)
    np.testing.assert_array_equal(Worklist(xray_folder).load_draft("case0", edited.shape), edited)
    # reopening the case brings the layer and the edit back
    widget.review.open_case(0)
    wait_case_open(qtbot, widget, "case0")
    np.testing.assert_array_equal(widget.viewer.layers["lungs"].data, edited)


def test_next_case_is_read_ahead_but_never_shown_stale(widget: LungUNetWidget, qtbot, xray_folder: Path):
    from napari_lung_unet.images.read import read_xray

    review, viewer = widget.review, widget.viewer
    open_and_wait(qtbot, widget, xray_folder)  # the read-ahead starts once the proposal is back
    second = review.worklist.cases[1].path
    qtbot.waitUntil(lambda: review.read_ahead.done(second), timeout=WAIT_MS)
    widget.auto_propose.setChecked(False)
    assert review.step(1)
    wait_case_open(qtbot, widget, "case1")
    assert review.read_ahead.hits == 1
    np.testing.assert_array_equal(viewer.layers["x-ray"].data, read_xray(second).pixels)

    third = review.worklist.cases[2].path  # read ahead at once: no proposal to wait for
    qtbot.waitUntil(lambda: review.read_ahead.done(third), timeout=WAIT_MS)
    stale = read_xray(third).pixels
    replacement = third.with_name("replacement.tmp")
    iio.imwrite(replacement, make_phantom((160, 144), seed=99, dtype=np.uint8)[0], extension=".png")
    os.replace(replacement, third)  # another program replaces the file after it was read ahead
    assert review.step(1)
    wait_case_open(qtbot, widget, "case2")
    assert review.read_ahead.hits == 1  # the copy read before the change was dropped
    shown = viewer.layers["x-ray"].data
    np.testing.assert_array_equal(shown, read_xray(third).pixels)
    assert not np.array_equal(shown, stale)


def test_worklist_remembers_its_convention(widget: LungUNetWidget, qtbot, xray_folder: Path):
    widget.auto_propose.setChecked(False)  # the convention's effect on proposals is the model's; this is the dock's memory
    assert widget.review.open_folder(xray_folder)
    wait_case_open(qtbot, widget, "case0")
    assert widget.state.convention is None  # never chosen: the model's own
    with qtbot.waitSignal(widget.state.convention_changed) as changed:
        widget.state.set_convention("whole-lung")
    assert changed.args == ["whole-lung"]
    widget.review.save_draft_now()  # waits for the writer
    assert Worklist(xray_folder).settings == {"convention": "whole-lung"}
    other = xray_folder.parent / "other"
    other.mkdir()
    (other / "a.png").write_bytes((xray_folder / "case0.png").read_bytes())
    assert widget.review.open_folder(other)
    wait_case_open(qtbot, widget, "a")
    assert widget.state.convention is None  # per worklist
    assert widget.review.open_folder(xray_folder)
    wait_case_open(qtbot, widget, "case0")
    assert widget.state.convention == "whole-lung"


def test_worklist_and_single_image_accepts_store_the_source_pixels(widget: LungUNetWidget, qtbot, xray_folder: Path, tmp_path: Path):
    """Both accept paths store the pixels a reader gets from the source file, and each record's sha256 is theirs."""
    from napari_lung_unet.images.read import read_source_pixels
    from napari_lung_unet.store.source_image import sha256_of

    store = CorrectionsStore(corrections_dir())
    single = tmp_path / "single16.png"  # 16-bit, opened on its own through napari's reader
    iio.imwrite(single, make_phantom((128, 120), seed=9)[0].astype(np.uint16) * 257)
    widget.viewer.open(str(single))  # napari's own reader: its layer.source names the file
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.propose_button.click()
    widget.review.accept()
    qtbot.waitUntil(lambda: len(store.case_ids()) == 1, timeout=WAIT_MS)
    open_and_wait(qtbot, widget, xray_folder)
    source = widget.review.case.path
    with qtbot.waitSignals([widget.review.case_accepted, widget.proposal_finished], timeout=WAIT_MS):
        widget.accept_button.click()  # the next case opens and is proposed before the test ends (not in its teardown)
    qtbot.waitUntil(lambda: len(store.case_ids()) == 2, timeout=WAIT_MS)
    for path in (single, source):
        raw = read_source_pixels(path)
        (case_id,) = [c for c in store.case_ids() if store.record(c).source_path == str(Path(path).resolve())]
        stored = read_source_pixels(store.image_path(case_id))
        assert stored.dtype == raw.dtype and np.array_equal(stored, raw), path
        assert store.record(case_id).image_sha256 == sha256_of(raw), path
