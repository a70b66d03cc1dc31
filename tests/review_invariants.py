"""The review machine's invariants, checked after every step (tests/review_machine.py; issue 33 item 3)."""

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



class ReviewInvariants:
    """Mixed into :class:`review_machine.ReviewMachine`; uses its state (``self.widget``, ``self.presses``, ...)."""

    def one_patient(self) -> list[str]:
        from napari.layers import Image, Labels, Points

        layers = list(self.viewer.layers)
        images = [layer for layer in layers if isinstance(layer, Image)]
        labels = [layer for layer in layers if isinstance(layer, Labels)]
        out = []
        if len(images) != 1 or len(labels) != 1:
            out.append(f"one-patient: {len(images)} images and {len(labels)} masks in the viewer")
        source = self.open_source()
        expected, self.expected_open = self.expected_open, None
        if expected is not None and source != expected[0]:
            out.append(f"one-patient: {expected[1]} should have opened {self.relative(expected[0])}, "
                       f"the dock shows {self.relative(source) if source is not None else 'no case'}")
        if source is None:
            return out
        # the open case's image and mask; a points layer of its refine clicks may show beside them (issue 33, item 7)
        visible = sorted(layer.name for layer in layers if layer.visible and not isinstance(layer, Points))
        image, mask = dock_image(self.widget), self.lungs()
        if image is None or mask is None or {image.name, mask.name} != set(visible):
            out.append(f"one-patient: visible layers {visible} are not the open case's image and mask")
        elif not np.array_equal(np.asarray(image.data), self.env.pixels[self.relative(source)]):
            out.append(f"one-patient: the image on screen is not {self.relative(source)}, the open case")
        elif mask.data.shape != image.data.shape:
            out.append(f"one-patient: mask {mask.data.shape} on image {image.data.shape}")
        return out

    def relative(self, source: Path) -> Path:
        return source.relative_to((self.root / "wards").resolve())

    def nobodys_mask(self) -> list[str]:
        source, mask = self.screen()
        if source is None or mask is None:
            return []
        knowledge = self.knowledge(source)
        key = digest(mask)
        name = str(self.relative(source))
        out = []
        if knowledge.meant is not None and not np.array_equal(mask, knowledge.meant):
            if knowledge.may_replace and key in knowledge.proposals:
                knowledge.meant = None  # the clinician let the edits go
            else:
                changed = int(np.count_nonzero(mask != knowledge.meant))
                asked = [a for s, a in self.asked if s == source]
                out.append(f"no-silent-loss: the edits on {name} were replaced ({changed} px) "
                           + (f"after the answer {asked[-1]!r}" if asked else "without a question"))
                knowledge.meant = mask  # report a loss once
        elif knowledge.meant is None and key not in knowledge.states and mask.any():
            out.append(f"nobody's-mask: {name} shows a mask that is neither a proposal for it nor an edit made on it")
        if key in knowledge.states:
            self._last_conventions[source] = knowledge.states[key]
        return out

    def store_is_what_was_seen(self) -> list[str]:
        from napari_lung_unet.nn.registry import Registry

        store_dir = self.widget.state.store_dir
        if not Path(store_dir).is_dir():
            records = {}
        else:
            store = CorrectionsStore(store_dir)
            records = {case_id: store.record(case_id) for case_id in store.case_ids()}
        out = []
        last_valid: dict[Path, Press] = {}
        for press in self.presses:
            if press.valid and not press.mask.any() and any(a == "keep" for _s, a in self.asked[press.asked_before:]):
                press.valid = False  # "store an empty mask?" answered Escape: nothing stored, and nothing meant
            if press.valid and press.source is not None:
                last_valid[press.source] = press
        by_source: dict[Path, list[str]] = {}
        for case_id, record in records.items():
            by_source.setdefault(Path(record.source_path).resolve(), []).append(case_id)
        for source, ids in by_source.items():
            if len(ids) > 1:
                out.append(f"store-is-what-was-seen: {len(ids)} records for one source {source}")
        missing = [str(self.relative(s)) for s in last_valid if s not in by_source]
        if missing:
            out.append(f"store-is-what-was-seen: accepted {sorted(missing)} but the store has no record of them "
                       f"({len(last_valid)} sources accepted, {len(records)} records)")
        versions = {card.version for card in Registry().cards()}
        store = CorrectionsStore(store_dir) if records else None
        for case_id, record in records.items():
            source = Path(record.source_path).resolve()
            press = last_valid.get(source)
            name = str(self.relative(source)) if source.is_relative_to((self.root / "wards").resolve()) else str(source)
            if press is None:
                shown = [p for p in self.presses if p.source == source]
                why = ("the mask of a case still proposing" if shown else "no Shift-A on it")
                out.append(f"store-is-what-was-seen: {name} stored ({'empty' if not iio.imread(store.mask_path(case_id)).any() else 'non-empty'}, "
                           f"model {record.model_version}) but only {why}")
                continue
            stored = iio.imread(store.mask_path(case_id))
            if not np.array_equal(stored, press.mask):
                out.append(f"store-is-what-was-seen: {name}'s record differs from the screen at its accept "
                           f"({int(np.count_nonzero(stored != press.mask))} px)")
            if record.image_sha256 != sha256_of(self.env.pixels[self.relative(source)]):
                out.append(f"store-is-what-was-seen: {name}'s image sha256 is not its source's")
            if press.conventions and record.convention not in press.conventions:
                out.append(f"store-is-what-was-seen: {name} recorded as {record.convention}, drawn in {sorted(press.conventions)}")
            if record.model_version not in versions:
                out.append(f"store-is-what-was-seen: {name} recorded with model version {record.model_version!r}")
        return out

    def status_tells_the_truth(self) -> list[str]:
        from napari_lung_unet.widget import strings

        text = self.widget.status_label.text()
        out = []

        def prefix(template: str) -> str:
            return template.split("{")[0]

        for template, what in ((strings.ACCEPTING, "storing"), (strings.REFINING, "refining"),
                               (strings.STATUS_LOADING, "loading a model"), (strings.STATUS_PREDICTING, "predicting")):
            if text.startswith(prefix(template)):
                out.append(f"status-tells-the-truth: says {what} ({text!r}) with nothing running")
        if text.startswith(prefix(strings.REFINED)) and self.last_edit_kind in ("paint", "erase", "undo", "redo"):
            out.append(f"status-tells-the-truth: {text!r} after a {self.last_edit_kind}")
        source, mask = self.screen()
        if source is not None and mask is not None and mask.any() and text == strings.STATUS_IDLE:
            out.append(f"status-tells-the-truth: {text!r} over a mask")
        return out
