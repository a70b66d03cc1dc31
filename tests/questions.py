"""Answering the dock's questions the way a clinician does: a click on one of the box's buttons."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QMessageBox


def answer(widget: Any, act: bool) -> None:
    """Click "Replace my edits" / "Store empty mask" (``act``), or the safe button Escape also presses."""
    box = widget.state.question
    assert isinstance(box, QMessageBox) and box.isVisible(), "the dock asked nothing"
    role = QMessageBox.ButtonRole.DestructiveRole if act else QMessageBox.ButtonRole.RejectRole
    (button,) = [b for b in box.buttons() if box.buttonRole(b) == role]
    button.click()
