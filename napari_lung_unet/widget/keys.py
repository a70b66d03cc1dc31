"""Keyboard-first review: one table of keys, active from any focus in napari's window.

napari's own ``viewer.bind_key`` only hears keys while the canvas has focus; a click in the case
list or the brush box silenced them. These are Qt window shortcuts on the dock, so they fire
wherever the focus is in the window, except in a text field being typed in: a line edit claims
the printable keys it would insert (Qt's ShortcutOverride), so a typed model path stays text.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import Qt
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import QShortcut, QWidget

# key -> (action name, what it does); the order is the order of the tooltip and the README table
KEYS: dict[str, tuple[str, str]] = {
    "Shift+A": ("accept", "Accept the case the dock shows, open the next"),
    "Shift+N": ("next", "Next case"),
    "Shift+P": ("previous", "Previous case"),
    "Shift+S": ("skip", "Skip this case"),
    "Shift+R": ("right", "Paint the right lung (1)"),
    "Shift+L": ("left", "Paint the left lung (2)"),
    "Shift+E": ("eraser", "Eraser"),
    "Shift+F": ("refine", "Refine mode on/off: click missed lung, right-click extra"),
    "]": ("bigger", "Bigger brush"),
    "[": ("smaller", "Smaller brush"),
}


def tooltip() -> str:
    """The keys in one block, for the action bar's tooltip."""
    return "Keys (from anywhere in napari, except while typing in a text box):\n" + "\n".join(
        f"{key.replace('+', '-')}: {what}" for key, (_name, what) in KEYS.items()
    )


def bind(parent: QWidget, actions: dict[str, Callable[[], object]]) -> list[QShortcut]:
    """One window-wide shortcut per key in :data:`KEYS` (``actions`` maps each action name to a call)."""
    shortcuts = []
    for key, (name, _what) in KEYS.items():
        shortcut = QShortcut(QKeySequence(key), parent)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(lambda action=actions[name]: action())
        shortcuts.append(shortcut)
    return shortcuts
