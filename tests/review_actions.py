"""The review machine's actions: each one thing a clinician does in the dock (tests/review_machine.py)."""

from __future__ import annotations

import hashlib
import random
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
import imageio.v3 as iio
import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QApplication, QMessageBox
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.store.corrections import CorrectionsStore, sha256_of

from review_world import (  # noqa: F401 - the tests import the world from here too
    CONVENTIONS, DELAYS, Delays, Env, FILES, FIRST, Knowledge, P, PLUGIN, Press, SECOND, SETTLE_S, SHAPE, VERSIONS, Violation, WARDS, WIDGET, digest, dock_case, dock_idle, dock_image, dock_lungs, dock_question, dock_running, make_wards, press_shift_a, settle, two_convention_models,
)



class ReviewActions:
    """Mixed into :class:`review_machine.ReviewMachine`; uses its state (``self.widget``, ``self.presses``, ...)."""

    def do_next(self, p: dict) -> None:
        self.widget.worklist_panel.next.click()

    def do_previous(self, p: dict) -> None:
        self.widget.worklist_panel.previous.click()

    def do_case_click(self, p: dict) -> None:
        panel = self.widget.worklist_panel
        if panel.list.count():
            item = panel.list.item(int(p["positive"]) % panel.list.count())
            panel.list.itemClicked.emit(item)  # what a click on the row sends

    def do_skip(self, p: dict) -> None:
        self.widget.skip_button.click()

    def do_accept(self, p: dict) -> None:
        """Shift-A through napari's key path on the canvas: a snapshot of the screen at the press."""
        source, mask = self.screen()
        press = Press(source, mask if mask is not None else np.zeros(0, np.uint8), frozenset(), False, len(self.asked))
        if source is not None and mask is not None:
            self._take_proposals()
            knowledge = self.knowledge(source)
            key = digest(mask)
            known = key in knowledge.states and not self._proposing(source, mask)
            press.conventions = frozenset(knowledge.states.get(key, set()))
            press.valid = known and (bool(mask.any()) or key in knowledge.erased)
        self.presses.append(press)
        press_shift_a(self.widget)

    def _proposing(self, source: Path, mask: np.ndarray) -> bool:
        """The case is still waiting for its first proposal: nothing the clinician saw is on screen."""
        return dock_running(self.widget) and not mask.any()

    def do_paint(self, p: dict) -> None:
        def stroke(layer: Any) -> None:
            layer.brush_size = p["radius"]
            layer.paint(self._at(layer, p), p["label"])
        self._edit("paint", stroke)

    def do_erase(self, p: dict) -> None:
        def stroke(layer: Any) -> None:
            layer.brush_size = p["radius"] * 4
            layer.paint(self._at(layer, p), 0)
        self._edit("erase", stroke)

    def do_undo(self, p: dict) -> None:
        self._edit("undo", lambda layer: layer.undo())

    def do_redo(self, p: dict) -> None:
        self._edit("redo", lambda layer: layer.redo())

    def do_refine(self, p: dict) -> None:
        source, layer = self.open_source(), self.lungs()
        if source is None or layer is None:
            return
        self.refining.add(source)
        self._last_conventions[source] = self.conventions_of(source, np.asarray(layer.data)) or self._last_conventions.get(source, set())
        row, col = self._at(layer, p)
        if not p["positive"]:  # "this is not lung": on the nearest pixel of that lung, where a click changes something
            lung = np.argwhere(np.asarray(layer.data) == p["label"])
            if len(lung):
                row, col = (int(v) for v in lung[np.argmin(((lung - (row, col)) ** 2).sum(axis=1))])
        self.widget.review.refine.click(row, col, p["positive"])
        self.last_edit_kind = "refine"

    def do_convention(self, p: dict) -> None:
        combo = self.widget.convention.combo
        if combo.isEnabled():
            combo.setCurrentIndex(combo.findData(CONVENTIONS[1] if combo.currentData() == CONVENTIONS[0] else CONVENTIONS[0]))

    def do_reset(self, p: dict) -> None:
        self.widget.controls.reset.click()

    def do_repropose(self, p: dict) -> None:
        """Propose again, with the other registry version (or the same): a new proposal over this case."""
        version = VERSIONS[int(p["positive"])]
        self.widget.select_model(version)
        self.widget.propose_button.click()

    def do_make_current(self, p: dict) -> None:
        """Model history: promote or roll back to a version (both passed the gate: no question)."""
        history = self.widget.history
        history.select(VERSIONS[int(p["positive"])])
        history.rollback.click()

    def _at(self, layer: Any, p: dict) -> tuple[int, int]:
        rows, cols = layer.data.shape[-2:]
        return int(p["y"] * (rows - 1)), int(p["x"] * (cols - 1))

    def _do(self, name: str, p: dict) -> None:
        getattr(self, f"do_{name}")(p)
