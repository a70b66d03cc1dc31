"""The Fine-tune button: runs ``lung-unet finetune --json-progress`` in a child process.

A subprocess rather than a thread worker: training can run out of memory or crash inside a
native library, and in a thread that would take down the viewer that holds the clinician's
unsaved edits. A child process also cannot starve the GUI of the GIL, and Cancel is a plain
terminate: the registry stages versions and replaces CURRENT atomically, so a killed run leaves
the current model untouched. The child runs at lower CPU priority (``nice``) so painting stays
smooth on a laptop. Its JSON lines arrive through QProcess signals on the GUI thread.

The result is one line first, the verdict (:func:`.finetune_text.verdict`); what it trained on
and every check sit under a Details fold, so the 240-px dock shows the answer without scrolling.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from napari.qt.threading import FunctionWorker, create_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QProcess, Qt, QTimer, Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from ..nn.registry import Registry
from ..store.corrections import CorrectionsStore
from . import strings
from .finetune_text import PROMOTED, UNVERIFIED, result_lines, result_status, verdict

KILL_AFTER_MS = 5000  # give the child time to exit cleanly on terminate, then kill it
STDERR_TAIL = 2000
VERDICT_STYLE = "font-weight: bold;"  # a style sheet, not setFont: napari's own sheet would override a font


class FinetunePanel(QWidget):
    #: emitted when a run ends: the result dict (FinetuneResult fields), or None (failed/cancelled)
    finished = Signal(object)
    #: the clinician asked to re-propose the open case with this version
    repropose_requested = Signal(str)
    #: the clinician promoted an unverified version ("Promote anyway"); the registry changed
    promoted = Signal(str)

    def __init__(self, store_dir: Path, device: Any = lambda: "auto") -> None:
        super().__init__()
        self.store_dir = store_dir
        self._device = device
        self.steps: int | None = None  # hidden setting: None = the CLI default; tests use a few steps
        self.no_replay = False  # hidden setting: train on the corrections only (tests, no base data)
        self.extra_args: list[str] = []  # hidden setting: more `lung-unet finetune` options (tests, benchmarks)
        self.promote_worker: FunctionWorker | None = None
        self.process: QProcess | None = None
        self.result: dict | None = None
        self.pbar: progress | None = None
        self._buffer = b""
        self._stderr = b""
        self._cancelled = False

        self.button = QPushButton(strings.FINETUNE)
        self.button.setToolTip(strings.FINETUNE_TIP)
        self.button.clicked.connect(self.start)
        self.cancel_button = QPushButton(strings.CANCEL)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.status = _never_wider(QLabel(""))  # the progress line while it runs, then the verdict
        self.details_button = QToolButton()
        self.details_button.setText(strings.DETAILS)
        self.details_button.setToolTip(strings.DETAILS_TIP)
        self.details_button.setCheckable(True)
        self.details_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.details_button.setArrowType(Qt.ArrowType.RightArrow)
        self.details_button.setAutoRaise(True)
        self.details_button.toggled.connect(self._fold)
        self.details_button.setVisible(False)
        self.details = _never_wider(QLabel(""))  # folded: the engine's summary, every check with its numbers
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setVisible(False)
        self.repropose = QPushButton("")
        # never wider than the dock: the text is in short lines, and the tooltip has it all if a name is cut
        self.repropose.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.repropose.setVisible(False)
        self.repropose.clicked.connect(self._on_repropose)
        self.promote_anyway = QPushButton(strings.PROMOTE_ANYWAY)
        self.promote_anyway.setToolTip(strings.PROMOTE_ANYWAY_TIP)
        self.promote_anyway.setVisible(False)
        self.promote_anyway.clicked.connect(self.promote_unverified)
        row = QHBoxLayout()
        row.addWidget(self.button)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.details_button)
        layout.addWidget(self.details)
        layout.addWidget(self.repropose)
        layout.addWidget(self.promote_anyway)

    @property
    def running(self) -> bool:
        return self.process is not None

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "napari_lung_unet.cli", "finetune", "--corrections", str(self.store_dir),
                "--json-progress", "--device", str(self._device())]
        if self.steps is not None:
            args += ["--steps", str(self.steps)]
        if self.no_replay:
            args.append("--no-replay")
        args += self.extra_args
        nice = shutil.which("nice")
        return [nice, "-n", "10", *args] if nice else args

    def start(self) -> bool:
        if self.running:
            show_warning(strings.ERROR_PREFIX + strings.FINETUNE_RUNNING)
            return False
        if len(CorrectionsStore(self.store_dir)) == 0:
            show_error(strings.ERROR_PREFIX + strings.FINETUNE_EMPTY.format(store=self.store_dir))
            return False
        self.clear_result()
        self._buffer, self._stderr, self._cancelled = b"", b"", False
        process = QProcess(self)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._on_finished)
        program, *args = self.command()
        self.process = process
        self.pbar = progress(total=self.steps or 0, desc=strings.FINETUNE)
        self.button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._show_line(strings.FINETUNE_STAGE.format(message="starting"))
        process.start(program, args)
        return True

    def cancel(self) -> None:
        if self.process is None:
            return
        self._cancelled = True
        self.process.terminate()
        # the timer is the process's child, so it never fires on a process already deleted
        timer = QTimer(self.process)
        timer.setSingleShot(True)
        timer.timeout.connect(self.process.kill)  # a no-op once the process has exited
        timer.start(KILL_AFTER_MS)

    # -- the child's output (GUI thread, via QProcess signals) -----------------------
    def _read_stdout(self) -> None:
        assert self.process is not None
        self._buffer += bytes(self.process.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a library printed something; only our JSON lines matter
            if isinstance(event, dict):
                self._on_event(event)

    def _read_stderr(self) -> None:
        assert self.process is not None
        self._stderr = (self._stderr + bytes(self.process.readAllStandardError()))[-STDERR_TAIL:]

    def _on_event(self, event: dict) -> None:
        stage = event.get("stage")
        if stage == "train" and self.pbar is not None:
            steps = int(event.get("steps") or 0)
            if steps and self.pbar.total != steps:
                self.pbar.total = steps
            step = int(event.get("step") or 0)
            if step > self.pbar.n:
                self.pbar.update(step - self.pbar.n)  # update() is what emits napari's progress events
            eta = event.get("eta_s")  # None while the first steps are timed
            template = strings.FINETUNE_PROGRESS if eta is not None else strings.FINETUNE_PROGRESS_TIMING
            text = template.format(step=event.get("step", 0), steps=steps, loss=event.get("loss", 0.0), eta=eta)
            self.pbar.set_description(text)
            self._show_line(text)
        elif stage == "done":
            self.result = event.get("result")
        elif event.get("message"):
            self._show_line(strings.FINETUNE_STAGE.format(message=event["message"]))
            if self.pbar is not None:
                self.pbar.set_description(strings.FINETUNE_STAGE.format(message=event["message"]))

    def _on_finished(self, code: int, _status: Any = None) -> None:
        self._read_stdout()
        if self.pbar is not None:
            self.pbar.close()
        self.pbar = None
        if self.process is not None:
            self.process.deleteLater()  # one QProcess per run; do not pile them up under the panel
        self.process = None
        self.button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        result = self.result
        if self._cancelled:
            self._show_line(strings.FINETUNE_CANCELLED)
            show_info(strings.ERROR_PREFIX + strings.FINETUNE_CANCELLED)
            result = None
        elif result is None or code != 0:
            tail = self._stderr.decode("utf-8", "replace").strip().splitlines()
            message = strings.FINETUNE_FAILED.format(code=code, tail=tail[-1] if tail else "no output")
            self._show_line(message)
            show_error(strings.ERROR_PREFIX + message)
            result = None
        else:
            self.show_result(result)
        self.finished.emit(result)

    def show_result(self, result: dict) -> None:
        """The verdict in one line, the rest under the fold; Re-propose names the version's standing
        when it is not current."""
        line = verdict(result)
        self.status.setText(line)
        self.status.setStyleSheet(VERDICT_STYLE)
        self.status.setToolTip(str(result.get("reason", "")))
        self.details.setText("\n".join(result_lines(result)))
        self.details_button.setVisible(True)
        self._fold(self.details_button.isChecked())
        show_info(strings.ERROR_PREFIX + line)
        status = result_status(result)
        version = strings.short_name(str(result["version"]))
        if status == PROMOTED:
            text = strings.REPROPOSE.format(version=version)
        else:
            text = strings.REPROPOSE_NOT_CURRENT.format(version=version, status=status)
        self.repropose.setText(text)
        self.repropose.setToolTip(text.replace(version, str(result["version"])))
        self.repropose.setVisible(True)
        self.promote_anyway.setVisible(status == UNVERIFIED)

    def clear_result(self) -> None:
        """Forget the last run's result: it belongs to the case and folder it was run from."""
        if self.running:
            return  # the progress line of a run still going stays
        self.result = None
        self._show_line("")
        self.details.setText("")
        self.details_button.setVisible(False)
        self.details.setVisible(False)
        self.repropose.setVisible(False)
        self.promote_anyway.setVisible(False)

    def _fold(self, open_: bool) -> None:
        self.details_button.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)
        self.details.setVisible(open_ and not self.details_button.isHidden())  # isVisible: False on a hidden tab

    def _show_line(self, text: str) -> None:
        """A progress or stage line in the status label (plain: bold is for the verdict)."""
        self.status.setStyleSheet("")
        self.status.setText(text)

    def promote_unverified(self) -> FunctionWorker | None:
        """Make an unverified version current, if the current model is still its parent.

        Off the GUI thread: promoting loads the weights once to refuse a file that does not load.
        """
        result = self.result
        if result is None or self.promote_worker is not None:
            return None
        self.promote_anyway.setEnabled(False)
        version, parent = result["version"], result["parent"]
        self.promote_worker = create_worker(
            Registry().promote, version, expected_current=parent,
            _start_thread=False,
            _connect={"returned": lambda _none: self._on_promoted(version), "errored": self._on_promote_failed},
        )
        self.promote_worker.start()
        return self.promote_worker

    def _on_promoted(self, version: str) -> None:
        self.promote_worker = None
        self.promote_anyway.setEnabled(True)
        self.promote_anyway.setVisible(False)
        message = strings.PROMOTED_ANYWAY.format(version=version)
        self.status.setText(strings.VERDICT_PROMOTED_BY_YOU)
        self.details.setText(self.details.text() + "\n" + message)
        self.repropose.setText(strings.REPROPOSE.format(version=strings.short_name(version)))
        show_info(strings.ERROR_PREFIX + message)
        self.promoted.emit(version)

    def _on_promote_failed(self, exc: BaseException) -> None:
        # a PromotionConflict (the current model changed meanwhile) says what to do instead
        self.promote_worker = None
        self.promote_anyway.setEnabled(True)
        show_error(strings.ERROR_PREFIX + str(exc))

    def _on_repropose(self) -> None:
        if self.result is not None:
            self.repropose_requested.emit(self.result["version"])


def _never_wider(label: QLabel) -> QLabel:
    """A wrapping label that takes the dock's width and never asks for more: a long name in the
    engine's words is cut at the edge (it is whole in the tooltip) rather than widening the dock."""
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label
