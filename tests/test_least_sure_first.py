"""The worklist least sure first (issue 29 item 3): with the bundled model's proposals in, the case list
shows the cases still to review by their expected Dice, lowest first, and Accept moves on to the least
sure case left, whatever its place in the folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from qtpy.QtCore import Qt

from case_open import wait_case_open

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

WAIT_MS = 120_000


def rows(widget) -> list[str]:  # noqa: ANN001
    panel = widget.worklist_panel
    worklist = widget.state.worklist
    return [worklist.cases[panel.list.item(row).data(Qt.ItemDataRole.UserRole)].case_id for row in range(panel.list.count())]


def test_least_sure_first_orders_the_list_and_accept_opens_the_least_sure_case(bundled_dock, qtbot, xray_folder: Path) -> None:  # noqa: ANN001
    widget = bundled_dock
    review = widget.review
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        review.open_folder(xray_folder)
    for case_id in ("case1", "case2"):  # every case proposed once: each has its expected Dice
        with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
            review.step(1)
        wait_case_open(qtbot, widget, case_id)
    cases = widget.state.worklist.cases
    expected = {case.case_id: case.confidence for case in cases}
    assert all(value is not None and 0.0 <= value <= 1.0 for value in expected.values()), expected
    assert len(set(expected.values())) == 3, expected  # three different phantoms, three different estimates
    assert rows(widget) == ["case0", "case1", "case2"]  # file order until asked

    widget.worklist_panel.least_sure_first.setChecked(True)
    least_first = sorted(expected, key=expected.get)
    assert rows(widget) == least_first

    # Accept the open case (case2): the least sure of the other two opens next, and case2 goes to the end
    others = [case_id for case_id in least_first if case_id != "case2"]
    with qtbot.waitSignal(widget.review.case_accepted, timeout=WAIT_MS):
        assert review.accept()
    wait_case_open(qtbot, widget, others[0])
    assert rows(widget) == others + ["case2"]
    assert widget.worklist_panel.list.currentRow() == 0  # the open case is the list's selected row
    qtbot.waitUntil(lambda: review.navigation.settled and not widget.state.running, timeout=WAIT_MS)
    review.save_draft_now()
