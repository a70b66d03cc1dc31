"""The review loop as a state machine, driven by random action sequences (issue 33, item 3).

A hypothesis ``RuleBasedStateMachine`` drives a real napari viewer with the real dock, a real tiny
two-convention U-Net (two registry versions) and real files: worklists whose X-rays share file
names across folders (``a/ward/img.png``, ``b/ward/img.png``, ``c/ward a/img.png``,
``d/ward_a/img.png``). The slow results (proposal, refine, the writer's accept) are delayed at
random by wrapping the real worker functions, never replacing them.

The machine does not predict what the dock does; it keeps a record of what the clinician did and
saw, and after every step (once the GUI has settled: no proposal, refine or write in flight)
checks the invariants against it:

- **one-patient**: one image, one mask paired with it, only the open case visible, and the
  image on screen is the open case's own pixels;
- **nobody's-mask**: the open case's mask is a proposal made for *that* X-ray, or what the
  clinician made of one on that case (a refine of another case, a proposal of another X-ray,
  never);
- **no-silent-loss**: a case the clinician edited shows their edits, unless they answered a
  question by letting them go (Escape keeps them);
- **store-is-what-was-seen**: every record equals the mask on screen at the last valid accept of
  its source (a mask that had been shown, non-empty unless the clinician erased it all), its
  image sha256 is the source's, its convention is the one that mask was drawn in, its model
  version is a registry version; one record per accepted source and none for another;
- **status-tells-the-truth**: after the GUI settled, the status line does not say something is
  running, storing or refined when it is not, nor "press Propose" over a mask.

Shared by ``tests/test_review_machine.py`` (CI: 40 sequences) and ``bench/review_sequences.py``
(1,000). Helpers named ``dock_*`` are the few places that know the dock's internals; the lead's
rewrite of issue 33 may move them (see the module's end).
"""

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

from review_actions import ReviewActions
from review_invariants import ReviewInvariants
from review_world import (  # noqa: F401 - the tests import the world from here too
    CONVENTIONS, DELAYS, Delays, Env, FILES, FIRST, Knowledge, P, PLUGIN, Press, SECOND, SETTLE_S, SHAPE, VERSIONS, Violation, WARDS, WIDGET, digest, dock_case, dock_idle, dock_image, dock_lungs, dock_question, dock_running, make_wards, press_shift_a, settle, two_convention_models,
)


class ReviewMachine(ReviewActions, ReviewInvariants, RuleBasedStateMachine):
    env: Env  # set by the runner before hypothesis makes instances
    only: str | None = None  # check one invariant only (the bench shrinks each kind of failure on its own)
    collect: list[tuple[list[str], list[str]]] | None = None  # the bench: (steps, violations) of failed sequences, no raise

    def __init__(self) -> None:
        super().__init__()
        env = self.env
        self.log: list[str] = []  # the steps so far, as hypothesis would print them
        self.expired = env.deadline is not None and time.monotonic() > env.deadline
        self.done = self.expired  # True: every step is skipped (a violation was collected, or the bench's time is up)
        if self.expired:
            return  # a sequence that passes at once: generating stops mattering, and shrinking ends with what it has
        env.examples += 1
        self.root = env.home / f"example{env.examples}"
        shutil.copytree(env.template, self.root / "wards")
        self.viewer = env.new_viewer()
        _dock, self.widget = self.viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
        self.widget.device_combo.setCurrentText("cpu")
        self.widget.state.store_dir = self.root / "corrections"
        from napari_lung_unet.nn.registry import Registry

        Registry().set_current(VERSIONS[0])
        self.widget.state.registry_changed()
        self.know: dict[Path, Knowledge] = {}
        self._last_conventions: dict[Path, set[str]] = {}  # the conventions of each source's mask as last seen
        self.presses: list[Press] = []
        self.violations: list[str] = []
        self.refining: set[Path] = set()  # sources with refine clicks not yet settled
        self.acting = False  # the machine's own edit is being made (its paint events are not a refine's)
        self.answer = "keep"  # how the next question is answered: "keep" (Escape) or "replace"
        self.asked: list[tuple[Path | None, str]] = []
        self.last_edit_kind = ""
        self.fired = 0  # chased actions fired by a timer
        self._answerer = QTimer()
        self._answerer.setInterval(10)
        self._answerer.timeout.connect(self._answer_questions)
        self._answerer.start()
        self._hooked: set[str] = set()
        self._proposals: list[tuple[Path | None, np.ndarray, str]] = []
        self._plock = threading.Lock()
        env.delays.on_proposal = self._proposal_made
        self.wait = env.wait_until
        self.expected_open: tuple[Path, str] | None = None  # the case a navigation step must have opened

    # -- bookkeeping -------------------------------------------------------------------------
    def source_of(self, image: Any) -> Path | None:
        pixels = np.asarray(image)
        for rel, known in self.env.pixels.items():
            if known.shape == pixels.shape and np.array_equal(known, pixels):
                return (self.root / "wards" / rel).resolve()
        return None

    def _proposal_made(self, request: Any, result: Any) -> None:  # worker thread
        source = self.source_of(getattr(request, "image", None))
        prediction = result.prediction
        with self._plock:
            self._proposals.append((source, np.array(prediction.labels, copy=True), prediction.convention))

    def _take_proposals(self) -> None:
        with self._plock:
            made, self._proposals = self._proposals, []
        for source, labels, convention in made:
            if source is None:
                continue
            knowledge = self.knowledge(source)
            key = digest(labels)
            knowledge.proposals.add(key)
            knowledge.states.setdefault(key, set()).add(convention)

    def knowledge(self, source: Path) -> Knowledge:
        return self.know.setdefault(source, Knowledge())

    def open_source(self) -> Path | None:
        case = dock_case(self.widget)
        return Path(case.path).resolve() if case is not None else None

    def lungs(self) -> Any:
        return dock_lungs(self.widget)

    def screen(self) -> tuple[Path | None, np.ndarray | None]:
        source, layer = self.open_source(), self.lungs()
        return source, (np.array(layer.data, copy=True) if layer is not None else None)

    def conventions_of(self, source: Path, mask: np.ndarray) -> set[str]:
        self._take_proposals()
        return set(self.knowledge(source).states.get(digest(mask), set()))

    def _hook_layer(self) -> None:
        layer = self.lungs()
        if layer is not None and layer.unique_id not in self._hooked:
            layer.events.paint.connect(self._on_paint)
            self._hooked.add(layer.unique_id)

    def _on_paint(self, event: Any) -> None:
        """A change of the mask the machine did not make: a refine's answer, or a proposal written over edits."""
        if self.acting:
            return
        self._take_proposals()
        source, mask = self.screen()
        if source is None or mask is None:
            return
        for atom in event.value:  # napari sends the paint event before it writes the pixels
            if isinstance(atom, tuple) and len(atom) == 3:
                indices, _old, new = atom
                mask[indices] = new
        knowledge = self.knowledge(source)
        key = digest(mask)
        if key in knowledge.proposals:
            return  # a proposal written as an undoable step: judged at the settle
        if source not in self.refining:
            others = ", ".join(sorted(p.parent.name + "/" + p.name for p in self.refining)) or "no case"
            self.violations.append(f"nobody's-mask: a refine wrote into {source.parent.name}/{source.name}, "
                                   f"which has no refine click pending (clicks pending on: {others})")
            return
        before = self._last_conventions.get(source, set())
        knowledge.states.setdefault(key, set()).update(before)
        knowledge.meant = mask
        knowledge.may_replace = False

    def _edit(self, kind: str, action: Callable[[Any], None]) -> None:
        """One edit by the clinician on the open case, through napari's own path."""
        source, layer = self.open_source(), self.lungs()
        if source is None or layer is None or not layer.editable:
            return  # nothing to edit (a locked mask, e.g. while its proposal runs, takes no stroke)
        before = np.array(layer.data, copy=True)
        conventions = self.conventions_of(source, before) or self._last_conventions.get(source, set())
        self.acting = True
        try:
            action(layer)
        finally:
            self.acting = False
        after = np.array(layer.data, copy=True)
        knowledge = self.knowledge(source)
        key = digest(after)
        if kind in ("undo", "redo") and key in knowledge.states:
            conventions = knowledge.states[key] or conventions  # back to a known mask: its own convention
        knowledge.states.setdefault(key, set()).update(conventions)
        if not after.any() and kind == "erase":
            knowledge.erased.add(key)
        if key in knowledge.proposals:
            knowledge.meant = None
        elif not np.array_equal(before, after) or knowledge.meant is not None:
            knowledge.meant = after
        knowledge.may_replace = False
        self._last_conventions[source] = knowledge.states[key]
        self.last_edit_kind = kind if not np.array_equal(before, after) else self.last_edit_kind

    # -- questions ------------------------------------------------------------------------
    def _answer_questions(self) -> None:
        box = dock_question(self.widget)
        if box is None:
            return
        source = self.open_source()
        self.asked.append((source, self.answer))
        if self.answer == "keep":
            escape = box.escapeButton()
            if escape is not None:
                escape.click()
            else:
                box.reject()
            return
        for button in box.buttons():
            if button is not box.escapeButton() and box.buttonRole(button) in (
                QMessageBox.ButtonRole.AcceptRole, QMessageBox.ButtonRole.YesRole, QMessageBox.ButtonRole.DestructiveRole):
                if source is not None:
                    self.knowledge(source).may_replace = True
                button.click()
                return
        box.accept()

    # -- settling -------------------------------------------------------------------------
    def settle(self) -> None:
        """Wait (on events, never a sleep) until nothing the dock started is still running."""
        settle(self.widget, self.wait)
        self._take_proposals()
        self._hook_layer()
        self.refining.clear()

    # -- actions (each one thing the clinician does; used alone or chased by another) ------------------
    def step(self, text: str) -> bool:
        """Log a step; True when a violation was already collected (the bench goes on to the next sequence)."""
        if self.done:
            return True
        self.log.append(f"state.{text}")
        self.env.steps += 1
        return False

    # -- rules ------------------------------------------------------------------------------
    @initialize(ward=st.integers(0, len(WARDS) - 1), seed=st.integers(0, 2**16))
    def open_first(self, ward: int, seed: int) -> None:
        if self.step(f"open_first(ward={ward!r}, seed={seed!r})"):
            return
        self.env.delays.rng.seed(seed)
        self.widget.review.open_folder(self.root / "wards" / WARDS[ward])
        self.settle()

    @rule(ward=st.integers(0, len(WARDS) - 1))
    def open_folder(self, ward: int) -> None:
        if self.step(f"open_folder(ward={ward!r})"):
            return
        self.widget.review.open_folder(self.root / "wards" / WARDS[ward])
        self.settle()

    @rule(name=st.sampled_from(("next", "previous", "case_click", "skip")), p=P)
    def navigate(self, name: str, p: dict) -> None:
        if self.step(f"navigate(name={name!r}, p={p!r})"):
            return
        worklist = self.widget.review.worklist
        target = None
        if worklist is not None and name != "skip":  # where Next, Previous or a click in the list must land
            last = len(worklist.cases) - 1
            target = {"next": min(worklist.current + 1, last), "previous": max(worklist.current - 1, 0),
                      "case_click": int(p["positive"]) % len(worklist.cases)}[name]
            target = (worklist.cases[target].path.resolve(), name)
        self._do(name, p)
        self.settle()
        self.expected_open = target

    @rule(presses=st.integers(1, 3), gaps=st.lists(st.integers(0, 200), min_size=2, max_size=2))
    def accept(self, presses: int, gaps: list[int]) -> None:
        """Shift-A, pressed 1-3 times within 200 ms: the later presses land while the next case proposes."""
        if self.step(f"accept(presses={presses!r}, gaps={gaps!r})"):
            return
        self._chain(["accept"] * presses, [0] + gaps[: presses - 1], {})

    @rule(name=st.sampled_from(("paint", "erase", "undo", "redo")), p=P)
    def edit(self, name: str, p: dict) -> None:
        if self.step(f"edit(name={name!r}, p={p!r})"):
            return
        self._do(name, p)
        self.settle()

    @rule(clicks=st.lists(P, min_size=1, max_size=3))
    def refine(self, clicks: list[dict]) -> None:
        if self.step(f"refine(clicks={clicks!r})"):
            return
        for p in clicks:
            self.do_refine(p)
        self.settle()

    @rule(name=st.sampled_from(("convention", "reset", "repropose", "make_current")), p=P, answer=st.sampled_from(("keep", "replace")))
    def replace_something(self, name: str, p: dict, answer: str) -> None:
        if self.step(f"replace_something(name={name!r}, p={p!r}, answer={answer!r})"):
            return
        self.answer = answer
        self._do(name, p)
        self.settle()

    @rule(first=st.sampled_from(FIRST), second=st.sampled_from(SECOND), delay=st.integers(0, 200), p=P,
          answer=st.sampled_from(("keep", "replace")))
    def chase(self, first: str, second: str, delay: int, p: dict, answer: str) -> None:
        """One action, then another ``delay`` ms later while the first's results are still on their way."""
        if self.step(f"chase(first={first!r}, second={second!r}, delay={delay!r}, p={p!r}, answer={answer!r})"):
            return
        self.answer = answer
        if first == "refine":
            self.do_refine(p)
            first = "next"  # refine clicks queued on one case, then a case switch
        self._chain([first, second], [0, delay], p)

    def _chain(self, names: list[str], gaps: list[int], p: dict) -> None:
        self.fired = 0
        t = 0
        for index, (name, gap) in enumerate(zip(names, gaps)):
            t += gap
            if index == 0:
                self._do(name, p)
                self.fired += 1
            else:
                QTimer.singleShot(t, lambda name=name: (self._do(name, p), setattr(self, "fired", self.fired + 1)))
        self.wait(lambda: self.fired == len(names), SETTLE_S)
        self.settle()

    # -- invariants -------------------------------------------------------------------------
    @invariant()
    def check(self) -> None:
        if self.done:
            return
        self.settle()
        problems = list(self.violations)
        self.violations.clear()
        problems += self.one_patient() + self.nobodys_mask() + self.store_is_what_was_seen() + self.status_tells_the_truth()
        if self.only is not None:
            problems = [p for p in problems if p.startswith(self.only)]
        if problems and self.collect is not None:
            self.collect.append((list(self.log), problems))
            self.done = True
        elif problems:
            raise Violation("; ".join(problems))

    def teardown(self) -> None:
        if self.expired:
            return
        if self.env.on_sequence is not None:
            self.env.on_sequence(len(self.log), self.collect[-1][1] if self.done and self.collect else None)
        self._answerer.stop()
        try:
            self.settle()
        except Exception:  # noqa: BLE001 - the example already failed; the viewer still closes
            pass
        self.env.delays.on_proposal = lambda request, result: None
        self.viewer.close()
