"""The case's life in a real dock (issue 33, issue 31 item 1): a case another reviewer has open says so
and Accept asks first; an empty mask is stored only after a yes; Accept during a proposal is ignored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from case_open import wait_case_open
from questions import answer

from napari_lung_unet.settings import corrections_dir
from napari_lung_unet.store.corrections import CorrectionsStore

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

WAIT_MS = 120_000
# another reviewer's dock, as far as the folder can tell: a live process holding a claim on case0
OTHER_REVIEWER = """
import sys
from napari_lung_unet.store.claims import Claims
Claims(sys.argv[1], user="bea").claim("case0")
print("claimed", flush=True)
sys.stdin.read()
"""


def wait_quiet(qtbot, widget) -> None:  # noqa: ANN001
    """Until the next case is shown and proposed: a viewer closed while a case opens or proposes can take
    Mesa down in teardown (seen under Xvfb)."""
    qtbot.waitUntil(lambda: widget.review.navigation.settled and not widget.state.running, timeout=WAIT_MS)
    widget.review.save_draft_now()


def stored_ids() -> list[str]:
    store_dir = corrections_dir()
    return CorrectionsStore(store_dir).case_ids() if store_dir.exists() else []


@pytest.fixture
def other_reviewer(xray_folder: Path):  # noqa: ANN201
    state_dir = xray_folder / ".lung_unet"
    state_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen([sys.executable, "-c", OTHER_REVIEWER, str(state_dir)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout.readline().strip() == "claimed"
    yield process
    process.stdin.close()
    process.wait(timeout=30)


def test_a_case_another_reviewer_has_open_says_so_and_accept_asks(docked_widget, qtbot, xray_folder: Path, other_reviewer, notes):
    widget = docked_widget
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.review.open_folder(xray_folder)
    wait_case_open(qtbot, widget, "case0")
    qtbot.waitUntil(lambda: widget.state.other_reviewer() is not None, timeout=WAIT_MS)
    assert any("case0 is open by bea" in message for _severity, message in notes)

    widget.accept_button.click()
    answer(widget, act=False)  # Cancel: nothing stored, the case stays open
    widget.review.save_draft_now()
    assert stored_ids() == [] and widget.review.case.case_id == "case0"

    with qtbot.waitSignal(widget.review.case_accepted, timeout=WAIT_MS):
        widget.accept_button.click()
        answer(widget, act=True)
    assert len(stored_ids()) == 1
    wait_quiet(qtbot, widget)


def test_an_empty_mask_is_stored_only_after_a_yes(docked_widget, qtbot, xray_folder: Path):
    widget = docked_widget
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        widget.review.open_folder(xray_folder)
    wait_case_open(qtbot, widget, "case0")
    lungs = widget.lungs_layer()
    everything = np.nonzero(np.ones(lungs.data.shape, bool))
    lungs.data_setitem(everything, np.zeros(everything[0].size, np.uint8))  # erased all of it, undoably

    widget.accept_button.click()
    answer(widget, act=False)  # Escape's answer
    widget.review.save_draft_now()
    assert stored_ids() == []
    with qtbot.waitSignal(widget.review.case_accepted, timeout=WAIT_MS):
        widget.accept_button.click()
        answer(widget, act=True)
    (case_id,) = stored_ids()
    assert not iio.imread(CorrectionsStore(corrections_dir()).case(case_id).mask).any()
    wait_quiet(qtbot, widget)


def test_accept_while_the_case_is_proposing_is_ignored_and_says_why(docked_widget, qtbot, xray_folder: Path):
    widget = docked_widget
    widget.review.open_folder(xray_folder)
    qtbot.waitUntil(lambda: widget.state.running, timeout=WAIT_MS)  # shown, its proposal on the way
    assert widget.state.life.phase == "proposing"
    assert widget.review.accept() is False
    assert "Accept waits until its mask is shown" in widget.status_label.text()
    wait_quiet(qtbot, widget)
    assert stored_ids() == []
