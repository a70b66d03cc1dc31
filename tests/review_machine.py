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

PLUGIN, WIDGET = "napari-lung-unet", "Lung U-Net"
WARDS = ("a/ward", "b/ward", "c/ward a", "d/ward_a")  # file names repeat across these (issue 33, failure 4)
FILES = ("img.png", "other.png")  # two cases per worklist
SHAPE = (224, 192)  # small: a proposal takes ~20 ms here, so 1,000 steps fit in CI
CONVENTIONS = ("lung-fields", "whole-lung")
VERSIONS = ("a", "b")  # two registry versions that know both conventions (see two_convention_models)
DELAYS = (0.0, 0.0, 0.0, 0.05, 0.25)  # seconds a slow result is held back, drawn per call
SETTLE_S = 60.0


# -- the world: models, folders ---------------------------------------------------------------
def two_convention_models(parent: Path) -> None:
    """Register versions "a" (current) and "b": the phantom-trained parent's U-Net with two output
    heads, lung fields and whole lung, that draw different, non-empty masks (whole lung a little wider;
    "b" a little tighter than "a" in both). Real weights, saved by the registry like any version."""
    import torch
    from dataclasses import replace

    from napari_lung_unet.nn.model import UNet
    from napari_lung_unet.nn.model_io import load_model
    from napari_lung_unet.nn.registry import Registry

    loaded = load_model(parent)
    config = replace(loaded.card.architecture, out_channels=2)
    registry = Registry()
    for version, (fields, whole) in zip(VERSIONS, ((0.0, 0.15), (-0.3, -0.1))):
        model = UNet(config)
        weights = {k: (torch.cat([v, v]) if k.startswith("head.") else v) for k, v in loaded.model.state_dict().items()}
        model.load_state_dict(weights)
        with torch.no_grad():
            model.head.bias[0] += fields
            model.head.bias[1] += whole
        card = replace(loaded.card, version=version, architecture=config, conventions=list(CONVENTIONS), status="trained", parent=None)
        registry.add(model, card)
    registry.set_current(VERSIONS[0])


def make_wards(root: Path) -> dict[Path, np.ndarray]:
    """The worklist folders (one per ward) and each file's pixels, keyed by the file's relative path."""
    pixels: dict[Path, np.ndarray] = {}
    for w, ward in enumerate(WARDS):
        for f, name in enumerate(FILES):
            image = make_phantom(SHAPE, seed=100 + 10 * w + f)[0]  # 16-bit, as detectors write
            path = root / ward / name
            path.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(path, image)
            pixels[Path(ward) / name] = image
    return pixels


def digest(array: np.ndarray) -> bytes:
    data = np.ascontiguousarray(array)
    return hashlib.blake2b(data.tobytes() + str((data.shape, data.dtype)).encode(), digest_size=16).digest()


# -- slow results, delayed at random (the real functions still run) ------------------------------
class Delays:
    """Wraps the real proposal, refine and accept-writer functions wherever the widget imported them."""

    def __init__(self, choices: tuple[float, ...] = DELAYS) -> None:
        self.choices = choices
        self.rng = random.Random(0)
        self.lock = threading.Lock()
        self.on_proposal: Callable[[Any, Any], None] = lambda request, result: None
        self._undo: list[tuple[Any, str, Any]] = []

    def draw(self) -> float:
        with self.lock:
            return self.rng.choice(self.choices)

    def install(self) -> None:
        from napari_lung_unet.widget import accepting, engine, refine_work

        real_proposal, real_refine = engine.run_proposal, refine_work.run_refine
        real_case, real_adhoc = accepting.write_case, accepting.write_adhoc
        delays = self

        def run_proposal(request, *args, **kwargs):  # noqa: ANN001, ANN202 - a generator, as the real one
            time.sleep(delays.draw())
            result = yield from real_proposal(request, *args, **kwargs)
            delays.on_proposal(request, result)
            return result

        def run_refine(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            time.sleep(delays.draw())
            return real_refine(*args, **kwargs)

        def write_case(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            time.sleep(delays.draw())
            return real_case(*args, **kwargs)

        def write_adhoc(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            time.sleep(delays.draw())
            return real_adhoc(*args, **kwargs)

        wrapped = {real_proposal: run_proposal, real_refine: run_refine, real_case: write_case, real_adhoc: write_adhoc}
        for name, module in list(sys.modules.items()):
            if not name.startswith("napari_lung_unet.widget") or module is None:
                continue
            for attr, value in list(vars(module).items()):
                if callable(value) and value in wrapped:
                    self._undo.append((module, attr, value))
                    setattr(module, attr, wrapped[value])

    def uninstall(self) -> None:
        while self._undo:
            module, attr, value = self._undo.pop()
            setattr(module, attr, value)


# -- what the runner provides: pytest's qtbot and make_napari_viewer, or the bench's own ----------
@dataclass
class Env:
    new_viewer: Callable[[], Any]  # a fresh napari viewer
    wait_until: Callable[[Callable[[], bool], float], None]  # process events until true, or raise on timeout
    home: Path  # where each example's folders and store go
    template: Path  # the wards, made once
    pixels: dict[Path, np.ndarray]
    delays: Delays
    examples: int = 0
    steps: int = 0
    deadline: float | None = None  # time.monotonic() after which no new sequence starts (the bench's --minutes)
    on_sequence: Callable[[int, list[str] | None], None] | None = None  # the bench's progress line per sequence




class Violation(AssertionError):
    """An invariant of issue 33 broken; the message names it."""


@dataclass
class Press:
    """Shift-A as the clinician pressed it: what was on screen at that moment."""

    source: Path | None
    mask: np.ndarray
    conventions: frozenset[str]
    valid: bool  # a mask that had been shown (not a case still proposing), non-empty unless erased by hand
    asked_before: int = 0  # questions asked before the press: one answered Escape after it declines an empty accept


@dataclass
class Knowledge:
    """What the machine knows of one source (X-ray file): the masks it may show and their conventions."""

    states: dict[bytes, set[str]] = field(default_factory=dict)  # mask digest -> conventions it was drawn in
    proposals: set[bytes] = field(default_factory=set)  # digests of proposals made for this X-ray
    meant: np.ndarray | None = None  # the clinician's edits (None: unedited, the mask is a proposal)
    may_replace: bool = False  # they answered a question by letting the edits go
    erased: set[bytes] = field(default_factory=set)  # empty masks the clinician made by hand


P = st.fixed_dictionaries({
    "y": st.floats(0.15, 0.85), "x": st.floats(0.1, 0.9), "label": st.sampled_from([1, 2]),
    "radius": st.integers(3, 40), "positive": st.booleans(),
})
FIRST = ("next", "previous", "case_click", "skip", "accept", "reset", "convention", "repropose", "refine", "make_current")
SECOND = ("paint", "erase", "accept", "next", "previous", "convention", "refine", "undo", "reset")


class ReviewMachine(RuleBasedStateMachine):
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


def settle(widget: Any, wait: Callable[[Callable[[], bool], float], None]) -> None:
    """Wait until no proposal, refine, case opening or write is in flight and no question is open."""
    wait(lambda: dock_idle(widget) and dock_question(widget) is None, SETTLE_S)
    marker: list[int] = []
    widget.writer.submit(lambda: None, returned=lambda _v: marker.append(1))
    wait(lambda: bool(marker), SETTLE_S)  # every write queued so far is done, its results delivered
    wait(lambda: dock_idle(widget) and dock_question(widget) is None, SETTLE_S)


# -- the dock's internals, in one place (the lead's rewrite of issue 33 may move them) ---------------
def dock_case(widget: Any) -> Any | None:
    """The open worklist case (an object with ``.path``), or None."""
    return widget.review.case


def dock_lungs(widget: Any) -> Any | None:
    return widget.lungs_layer()


def dock_image(widget: Any) -> Any | None:
    return widget.state.image()


def dock_running(widget: Any) -> bool:
    return bool(widget.state.running)


def dock_idle(widget: Any) -> bool:
    """No proposal, refine or case opening in flight."""
    refine = widget.review.refine
    opening = not widget.review.navigation.settled  # a folder or a case still being read
    from qtpy.QtCore import QThreadPool

    busy = QThreadPool.globalInstance().activeThreadCount() > 0  # napari's workers (proposal, refine, any other) run there
    return not busy and not widget.state.running and refine.worker is None and not getattr(refine, "_queue", ()) and not opening


def dock_question(widget: Any) -> QMessageBox | None:
    """The question the dock asks before edits would go (assumed a QMessageBox: modal, or a child of the dock)."""
    modal = QApplication.activeModalWidget()
    if isinstance(modal, QMessageBox) and modal.isVisible():
        return modal
    for box in widget.findChildren(QMessageBox):
        if box.isVisible():
            return box
    return None


def press_shift_a(widget: Any) -> None:
    """Shift-A as the keyboard sends it to napari's canvas (the dock binds it there with viewer.bind_key)."""
    from qtpy.QtTest import QTest

    canvas = widget.viewer.window._qt_viewer.canvas.native
    QTest.keyClick(canvas, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
