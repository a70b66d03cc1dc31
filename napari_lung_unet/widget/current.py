"""Which model version is current, read so that a damaged ``models/CURRENT`` never breaks the dock.

The registry raises :class:`~napari_lung_unet.nn.registry.DamagedPointer` with a message that names
the file and how to repair it. The dock shows that message as one line and keeps working (its
Model history can make a version current again, which rewrites the pointer).
"""

from __future__ import annotations

from ..nn.registry import DamagedPointer, Registry


def read_current(registry: Registry) -> tuple[str | None, str | None]:
    """``(version, None)``, or ``(None, the registry's message with its repair hint)`` when CURRENT is damaged."""
    try:
        return registry.current_version(), None
    except DamagedPointer as exc:
        return None, str(exc)
