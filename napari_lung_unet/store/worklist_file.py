"""``worklist.json`` on disk: read defensively, and changed only by a merge under a lock.

Several docks may review one folder (two reviewers on a shared drive). A dock never rewrites the
file from its own copy; it sends what it knows, each case with the time it last changed it
(``extra.changed``), and :func:`merge_state` keeps, case by case, the newer of the file's entry and
the dock's, under a lock file that holds on a network drive (:mod:`.lockfile`). So one reviewer's
accept never undoes another's, and a case only one of them knows is kept.

Reading trusts nothing: a file that is not a worklist (a top-level list, ``cases`` that is not a
mapping, nesting deep enough to exhaust the recursion limit) is set aside as
``worklist.json.damaged`` with a message and the folder opens with fresh statuses; a value outside
the known set (a status, a convention) is dropped with a message, so it never reaches a record.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..images.conventions import NAMES
from .atomic import atomic_write_json
from .lockfile import LockFile

STATUSES = ("new", "proposed", "edited", "accepted", "skipped")
CONVENTION = "convention"  # a case's ``extra`` key, and a worklist setting
CHANGED = "changed"  # a case's ``extra`` key: when (epoch seconds) a dock last changed the entry
SETTINGS_CHANGED = "settings_changed"  # top-level: when the settings last changed
LOCK_NAME = "worklist.lock"
MAX_STATE_BYTES = 256 << 20  # a worklist of 100,000 cases is about 25 MB
_NULLABLE = ("model_version", "confidence", "error")
_FIELDS = {"file": str, "status": str, "model_version": str, "confidence": (int, float), "error": str, "extra": dict}


def empty_state() -> dict:
    return {"cases": {}}


def read_state(path: Path) -> tuple[dict, list[str], str | None]:
    """(the file's valid content, notes on values dropped, why the whole file was unusable or None).

    A missing file is an empty worklist. An unusable one is left where it is: :func:`set_aside` moves it.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return empty_state(), [], None
    except OSError as exc:
        return empty_state(), [], str(exc.strerror or exc)
    if len(raw) > MAX_STATE_BYTES:
        return empty_state(), [], f"larger than {MAX_STATE_BYTES >> 20} MB"
    try:
        data = json.loads(raw)
    except RecursionError:
        return empty_state(), [], "nested too deeply to be a worklist"
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return empty_state(), [], f"not JSON ({exc})"
    if not isinstance(data, dict):
        return empty_state(), [], f"its top level is a {type(data).__name__}, not a mapping"
    cases = data.get("cases", {})
    if not isinstance(cases, dict):
        return empty_state(), [], f"its 'cases' is a {type(cases).__name__}, not a mapping"
    notes: list[str] = []
    clean: dict = {k: v for k, v in data.items() if k in ("format", "folder") and isinstance(v, (str, int))}
    clean["cases"] = {}
    for case_id, entry in cases.items():
        kept = clean_entry(case_id, entry, notes)
        if kept is not None:
            clean["cases"][case_id] = kept
    current = data.get("current")
    if isinstance(current, str):
        clean["current"] = current
    settings = data.get("settings")
    if settings is not None:
        clean["settings"] = clean_settings(settings, notes)
    stamp = data.get(SETTINGS_CHANGED)
    if _is_number(stamp):
        clean[SETTINGS_CHANGED] = float(stamp)
    return clean, notes, None


def clean_entry(case_id: str, entry: object, notes: list[str]) -> dict | None:
    """One case's entry with every value of the wrong type or outside the known set dropped (and noted)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        notes.append(f"case {case_id[:60]!r}: not a case entry, dropped")
        return None
    kept: dict = {}
    for key, value in entry.items():
        kind = _FIELDS.get(key)
        if kind is None:
            continue  # an unknown field: a later version's belongs in extra
        if value is None and key in _NULLABLE:
            kept[key] = None
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            notes.append(f"case {case_id[:60]!r}: {key} {_shown(value)} is not a {_kind_name(kind)}, dropped")
            continue
        kept[key] = value
    if kept.get("status", "new") not in STATUSES:
        notes.append(f"case {case_id[:60]!r}: unknown status {_shown(kept.pop('status'))}, dropped")
    confidence = kept.get("confidence")
    if confidence is not None and not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
        notes.append(f"case {case_id[:60]!r}: confidence {_shown(kept.pop('confidence'))} is not in 0..1, dropped")
    extra = dict(kept.get("extra", {}))
    convention = extra.get(CONVENTION)
    if convention is not None and convention not in NAMES:
        notes.append(f"case {case_id[:60]!r}: unknown convention {_shown(extra.pop(CONVENTION))}, dropped")
    if CHANGED in extra and not _is_number(extra[CHANGED]):
        del extra[CHANGED]
    kept["extra"] = extra
    return kept


def clean_settings(settings: object, notes: list[str]) -> dict:
    if not isinstance(settings, dict):
        notes.append(f"settings {_shown(settings)} is not a mapping, dropped")
        return {}
    kept = dict(settings)
    convention = kept.get(CONVENTION)
    if convention is not None and convention not in NAMES:
        notes.append(f"setting convention {_shown(kept.pop(CONVENTION))} is not one of {', '.join(NAMES)}, dropped")
    return kept


def stamp_of(entry: dict | None) -> float:
    """When a dock last changed ``entry`` (0 for entries written before stamps, and for none)."""
    if not entry:
        return 0.0
    extra = entry.get("extra")
    stamp = extra.get(CHANGED) if isinstance(extra, dict) else None
    return float(stamp) if _is_number(stamp) else 0.0


def merged(disk: dict, payload: dict) -> dict:
    """The state to write: per case the newer entry (ties to the file's), the newer settings, the payload's current."""
    out = dict(disk)
    cases = dict(disk.get("cases", {}))
    for case_id, entry in payload.get("cases", {}).items():
        if case_id not in cases or stamp_of(entry) > stamp_of(cases[case_id]):
            cases[case_id] = entry
    out["cases"] = cases
    for key in ("format", "folder", "current"):
        if key in payload:
            out[key] = payload[key]
    if float(payload.get(SETTINGS_CHANGED, 0.0)) > float(disk.get(SETTINGS_CHANGED, 0.0)):
        out[SETTINGS_CHANGED] = payload[SETTINGS_CHANGED]
        out["settings"] = dict(payload.get("settings", {}))
        if not out["settings"]:
            del out["settings"]
    return out


def merge_state(path: str | os.PathLike[str], payload: dict) -> tuple[dict, list[str], str | None]:
    """Merge ``payload`` into the state file at ``path`` under its lock; (what the file now holds, notes, set-aside message).

    Safe from any thread: it touches no in-memory worklist. A damaged file found here is set aside.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with LockFile(path.with_name(LOCK_NAME), timeout=60.0, stale_after=30.0):
        disk, notes, damaged = read_state(path)
        aside = set_aside(path, damaged) if damaged else None
        state = merged(disk, payload)
        atomic_write_json(path, state)
    return state, notes, aside


def set_aside(path: Path, why: str) -> str:
    """Keep an unusable state file for inspection under a free ``.damaged`` name; the message that says so."""
    n, aside = 1, path.with_name(path.name + ".damaged")
    while aside.exists() or aside.is_symlink():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{n}")
    try:
        os.replace(path, aside)
    except OSError as exc:
        return f"{path}: unreadable ({why}); could not set it aside ({exc.strerror or exc}); statuses start fresh"
    return f"{path}: unreadable ({why}); set aside as {aside.name}, statuses start fresh"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _kind_name(kind: type | tuple) -> str:
    return "number" if isinstance(kind, tuple) else {str: "text", dict: "mapping"}.get(kind, kind.__name__)


def _shown(value: object) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return f"a deeply nested {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."
