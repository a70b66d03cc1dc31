"""The world the review machine acts in (tests/review_machine.py): worklists whose X-rays share file
names, two real two-convention models, delays wrapped around the real workers, and the few helpers
that know the dock's internals (``dock_*``)."""

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
