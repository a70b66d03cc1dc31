"""The dock's questions: one open at a time, window-modal, no nested event loop.

A question never blocks the GUI thread (``QMessageBox.open``, not ``exec``), and its safe answer
is the default and the Escape key: "keep my edits", "do not store an empty mask". The open box is
``DockState.question``, so the review (and a test) can find and answer it.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QMessageBox, QWidget

from . import strings
from .dock_state import DockState


def ask(state: DockState, title: str, text: str, act: str, keep: str, on_act: Callable[[], None],
        on_keep: Callable[[], None] | None = None) -> QMessageBox:
    """Ask before ``act`` (the destructive choice); ``keep`` is the default and what Escape answers."""
    if state.question is not None:  # one question at a time: the new one replaces the old, unanswered (kept)
        old, state.question = state.question, None
        old.done(0)
        old.deleteLater()
    parent = state.parent()
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.NoButton,
                      parent if isinstance(parent, QWidget) else None)
    act_button = box.addButton(act, QMessageBox.ButtonRole.DestructiveRole)
    keep_button = box.addButton(keep, QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(keep_button)  # Enter alone never throws work away
    box.setEscapeButton(keep_button)

    def answered(_code: int) -> None:
        if state.question is not box:
            return  # replaced by a newer question: kept
        state.question = None
        chosen = box.clickedButton() is act_button
        box.deleteLater()
        if chosen:
            on_act()
        elif on_keep is not None:
            on_keep()

    box.finished.connect(answered)
    state.question = box
    box.open()
    return box


def ask_to_replace(state: DockState, what: str, on_replace: Callable[[], None],
                   on_keep: Callable[[], None] | None = None) -> QMessageBox:
    """An edited mask is about to be replaced by ``what``: ask first; Escape keeps the edits."""
    return ask(state, strings.REPLACE_TITLE, strings.REPLACE_TEXT.format(what=what), strings.REPLACE_YES,
               strings.REPLACE_KEEP, on_replace, on_keep)
