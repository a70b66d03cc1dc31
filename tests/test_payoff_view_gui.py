"""The Model tab's payoff on the clinician's own cases (issue 32 item 4): cases accepted under two model
versions, and the tab says, per version, how many and how much of each proposal was changed, as the
store's records have it."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import pytest

from case_open import wait_case_open

from napari_lung_unet.nn.model_io import load_model
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.settings import corrections_dir
from napari_lung_unet.store.corrections import CorrectionsStore

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

WAIT_MS = 120_000


def accept_and_wait(qtbot, widget) -> None:  # noqa: ANN001
    with qtbot.waitSignal(widget.history.payoff_shown, timeout=WAIT_MS):
        assert widget.review.accept()


def paint_an_edit(layer, at: tuple[int, int], radius: int) -> None:  # noqa: ANN001
    """A brush stroke that surely changes the mask: a label other than the one under the brush."""
    layer.brush_size = 2 * radius
    layer.paint(at, 1 if layer.data[at] != 1 else 2)


def test_the_model_tab_shows_each_versions_payoff_from_the_records(docked_widget, qtbot, tiny_model_dir: Path,
                                                                   xray_folder: Path) -> None:  # noqa: ANN001
    widget = docked_widget
    review = widget.review
    assert "No cases accepted yet" in widget.history.payoff.text()

    # two cases proposed by "tiny": one corrected with a stroke, one accepted as proposed
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        review.open_folder(xray_folder)
    wait_case_open(qtbot, widget, "case0")
    lungs = widget.viewer.layers["lungs"]
    paint_an_edit(lungs, (40, 40), radius=8)
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):  # the next case opens and is proposed
        accept_and_wait(qtbot, widget)
    wait_case_open(qtbot, widget, "case1")
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        accept_and_wait(qtbot, widget)
    wait_case_open(qtbot, widget, "case2")

    # a second version proposes the third case, which is corrected with a larger stroke
    loaded = load_model(tiny_model_dir)
    Registry().add(loaded.model, dataclasses.replace(loaded.card, version="tiny-2"))
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        review.propose(model="tiny-2")
    paint_an_edit(lungs, (80, 70), radius=14)
    accept_and_wait(qtbot, widget)

    # what the records say, version by version
    store = CorrectionsStore(corrections_dir())
    changed: dict[str, list[float]] = {}
    for case_id in store.case_ids():
        record = store.record(case_id)
        changed.setdefault(record.model_version, []).append(record.fraction_changed)
    assert sorted(changed) == ["tiny", "tiny-2"] and len(changed["tiny"]) == 2 and len(changed["tiny-2"]) == 1
    assert changed["tiny"][0] != changed["tiny"][1]  # one case changed, one not: median and mean differ

    def percent(values: list[float], how) -> str:  # noqa: ANN001
        return f"{how(values) * 100:.1f} %"

    lines = widget.history.payoff.text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("tiny-2: 1 case,")  # the version used last comes first
    assert f"{percent(changed['tiny-2'], statistics.median)} changed" in lines[0]
    assert lines[1].startswith("tiny before it: 2 cases,")
    assert percent(changed["tiny"], statistics.median) in lines[1]
    assert f"mean {percent(changed['tiny'], statistics.fmean)}" in lines[1]
    assert sum(row.cases for row in widget.history.payoff_rows) == 3
    qtbot.waitUntil(lambda: widget.review.navigation.settled and not widget.state.running, timeout=WAIT_MS)
