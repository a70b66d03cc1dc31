"""A stored case's identity is its source file, not its folder's base name (issue 33).

Hospitals name folders ``images``, ``2024-01`` or ``ward`` and files ``img.png``: an id built from
the base names alone made four different X-rays two stored cases. The id stays readable (the
clinician recognises it in ``lung-unet export``) and ends with a short hash of the resolved path,
so two different sources never share a case, and the same source accepted again replaces its own.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .corrections import safe_case_id

PATH_DIGITS = 8  # 32 bits of the path's sha256: a clash needs ~65,000 sources with the same folder and file name


def case_id_for_source(path: str | Path) -> str:
    """``<folder>-<stem>-<8 hex>``: the source's folder and file name, and a hash of its resolved path."""
    resolved = Path(path).resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8", "surrogateescape")).hexdigest()[:PATH_DIGITS]
    readable = safe_case_id(f"{resolved.parent.name}-{resolved.stem}")
    return f"{readable}-{digest}"


def legacy_case_id(folder: Path, case_id: str) -> str:
    """The id the dock gave a worklist case before ids named their source (re-accepting one replaces it)."""
    return safe_case_id(f"{folder.name}-{case_id}")
