"""A review worklist: a folder of X-rays, each case's status, its cached proposal and its draft.

No Qt here, so the bookkeeping is unit-testable and the GUI only decides *when* to call it.

State lives in ``<folder>/.lung_unet/`` (or, when the folder is read-only, under
``$LUNG_UNET_HOME/worklists/<hash of the folder path>/``)::

    worklist.json          status per case, the case last open, proposal model/confidence/convention,
                           and the worklist's own settings (e.g. the lung convention)
    proposals/<id>.png     the model's proposal (so "reset to proposal" and "fraction changed"
                           survive a restart without re-running the model)
    drafts/<id>.png        the clinician's latest labels for the case (autosaved after edits)

Every file is written atomically, so a crash never leaves a half-written status or draft.

Several docks may share the folder (two reviewers on a network drive): the state file is never
rewritten from one dock's copy but merged case by case under a lock (:mod:`.worklist_file`), and
who has a case open is a claim with a time-out (:mod:`.claims`).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..images.conventions import DEFAULT_CONVENTION, check_convention
from ..images.read import list_images
from ..nn.quality_card import FLAG_BELOW, is_flagged
from ..settings import home_dir
from .atomic import atomic_write_png
from . import worklist_order as ordering
from .claims import Claim, Claims
from .corrections import safe_case_id
from .worklist_file import CHANGED, CONVENTION, SETTINGS_CHANGED, STATUSES, merge_state, read_state, set_aside, stamp_of

NEW, PROPOSED, EDITED, ACCEPTED, SKIPPED = STATUSES
UNREVIEWED = frozenset({NEW, PROPOSED, EDITED})
STATE_DIR_NAME = ".lung_unet"
STATE_FILE = "worklist.json"
STATE_FORMAT = 1
#: a proposal whose ``confidence`` (since issue 29 its expected Dice, Prediction.expected_dice) is below
#: this is flagged for review first: the measured default of nn/quality_card.py
UNCERTAIN_BELOW = FLAG_BELOW


def is_uncertain(confidence: float | None) -> bool:
    """The one rule for flagging a proposal for careful review (worklist marks, the dock's model line, results.csv)."""
    return is_flagged(confidence, UNCERTAIN_BELOW)


class WorklistError(ValueError):
    """The folder cannot be used as a worklist; the message says why."""


@dataclass
class Case:
    case_id: str
    path: Path
    status: str = NEW
    model_version: str | None = None
    confidence: float | None = None
    error: str | None = None  # set when the file could not be read
    convention: str | None = None  # the cached proposal's lung convention; None: saved before it was recorded

    @property
    def proposal_convention(self) -> str:
        """How the cached proposal is drawn: worklists saved before conventions were recorded drew lung fields."""
        return self.convention or DEFAULT_CONVENTION

    @property
    def uncertain(self) -> bool:
        return is_uncertain(self.confidence)

    @property
    def unreviewed(self) -> bool:
        return self.status in UNREVIEWED

    def __setattr__(self, name: str, value: Any) -> None:
        # a value outside the known set is refused where it enters, so it never reaches a record
        if name == "status" and value not in STATUSES:
            raise ValueError(f"unknown status {value!r}; expected one of {', '.join(STATUSES)}")
        if name == "convention" and value is not None:
            check_convention(value)
        super().__setattr__(name, value)


class WorklistSettings(dict):
    """The worklist's settings: a dict that refuses a convention outside the known set."""

    def __setitem__(self, key: str, value: Any) -> None:
        if key == CONVENTION and value is not None:
            check_convention(value)
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]


@dataclass
class _Saved:
    """The JSON shape of one case in worklist.json (paths are stored relative to the folder)."""

    file: str
    status: str = NEW
    model_version: str | None = None
    confidence: float | None = None
    error: str | None = None
    # newer fields live here, so a state file stays readable by versions that predate them
    # (they pass ``extra`` through untouched; an unknown top-level key would fail to load there)
    extra: dict = field(default_factory=dict)


def state_dir_for(folder: Path) -> Path:
    """``<folder>/.lung_unet`` when writable, else a per-folder directory under the home folder."""
    local = folder / STATE_DIR_NAME
    try:
        local.mkdir(exist_ok=True)
        if os.access(local, os.W_OK):
            return local
    except OSError:
        pass
    key = hashlib.sha256(str(folder.resolve()).encode("utf-8")).hexdigest()[:16]
    fallback = home_dir() / "worklists" / key
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


class Worklist:
    """The cases of one folder, in file-name order, with persistent status and drafts."""

    def __init__(self, folder: str | Path, state_dir: str | Path | None = None) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise WorklistError(f"{self.folder}: not a folder")
        self.state_dir = Path(state_dir) if state_dir is not None else state_dir_for(self.folder)
        self.cases: list[Case] = _discover(self.folder)
        if not self.cases:
            raise WorklistError(f"{self.folder}: no X-ray images (PNG/TIFF/JPEG/DICOM) found")
        self.current = 0
        self._settings = WorklistSettings()  # per-worklist choices the dock remembers (JSON values only)
        self.load_error: str | None = None  # one line for the user: the state file was set aside, or values dropped
        self.load_notes: list[str] = []  # every value dropped while reading, one line each
        # what the state file held (or this dock last sent) for each case, and when it changed: an entry
        # that still equals it is sent with the file's time, so it never overrides another dock's change
        self._base: dict[str, tuple[dict, float]] = {c.case_id: (_entry(c), 0.0) for c in self.cases}
        self._settings_base: tuple[dict, float] = ({}, 0.0)
        self._claims: Claims | None = None
        self._load()

    # -- persistence -----------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def settings(self) -> WorklistSettings:
        return self._settings

    @settings.setter
    def settings(self, value: dict) -> None:
        self._settings = WorklistSettings()
        self._settings.update(value)

    def _load(self) -> None:
        data, notes, damaged = read_state(self.state_file)
        if damaged:
            # a damaged state file must not block review; keep it aside for inspection, start fresh
            self.load_error = set_aside(self.state_file, damaged)
            return
        self.load_notes = notes
        if notes:
            more = f" (and {len(notes) - 2} more)" if len(notes) > 2 else ""
            self.load_error = f"{self.state_file}: dropped values outside the known set: {'; '.join(notes[:2])}{more}"
        self.adopt(data)
        current = data.get("current")
        self.current = max(0, self.index_of(current)) if current else 0

    def adopt(self, data: dict) -> list[Case]:
        """Take the entries of a state file (as :func:`read_state` returns it) that are newer than what
        this worklist knows: another dock's accepts. An entry changed here and not yet sent is kept.
        Returns the cases that changed. Call it on the thread that owns the worklist."""
        changed = []
        saved = data.get("cases", {})
        for case in self.cases:
            entry = saved.get(case.case_id)
            if entry is None or entry.get("file") != case.path.name:
                continue
            base, base_stamp = self._base[case.case_id]
            stamp = stamp_of(entry)
            if (stamp <= base_stamp and base_stamp > 0) or _entry(case) != base:
                continue  # not newer, or changed here since: this dock's version is sent next
            extra = entry.get("extra", {})
            case.status = entry.get("status", NEW)
            case.model_version, case.confidence, case.error = entry.get("model_version"), entry.get("confidence"), entry.get("error")
            case.convention = extra.get(CONVENTION)
            self._base[case.case_id] = (_entry(case), stamp)
            if _entry(case) != base:
                changed.append(case)
        settings_stamp = float(data.get(SETTINGS_CHANGED, 0.0))
        settings = dict(data.get("settings", {}))
        if (settings_stamp > self._settings_base[1] or self._settings_base[1] == 0) and dict(self._settings) == self._settings_base[0]:
            self.settings = settings
            self._settings_base = (settings, settings_stamp)
        return changed

    def refresh(self) -> list[Case]:
        """Read the state file again and take what other docks changed meanwhile; the cases that changed."""
        data, _notes, damaged = read_state(self.state_file)
        return [] if damaged else self.adopt(data)

    def state_payload(self) -> dict:
        """What :meth:`save` merges into the state file: a snapshot another thread can write while this object changes.

        Each case carries the time this dock last changed it (``extra.changed``); an entry this dock did
        not change carries the file's own time, so a merge keeps whatever another dock wrote since.
        Write it with :func:`~.worklist_file.merge_state`, never by replacing the file.
        """
        now = time.time()
        cases = {}
        for c in self.cases:
            entry = _entry(c)
            base, stamp = self._base[c.case_id]
            if entry != base:
                stamp = max(now, stamp + 1e-3)  # later than the version it replaces, even on a clock behind
                self._base[c.case_id] = (entry, stamp)
            saved = asdict(_Saved(c.path.name, c.status, c.model_version, c.confidence, c.error,
                                  {CONVENTION: c.convention} if c.convention else {}))
            if stamp:
                saved["extra"][CHANGED] = stamp
            cases[c.case_id] = saved
        current = self.cases[self.current].case_id
        payload = {"format": STATE_FORMAT, "folder": str(self.folder), "current": current, "cases": cases}
        settings, stamp = self._settings_base
        if dict(self._settings) != settings:
            stamp = max(now, stamp + 1e-3)
            self._settings_base = (dict(self._settings), stamp)
        if self._settings or stamp:  # absent unless set: files stay as older versions wrote them
            payload["settings"] = dict(self._settings)
            payload[SETTINGS_CHANGED] = stamp
        return payload

    def save(self) -> None:
        """Merge this worklist's changes into the state file under its lock, and take other docks' changes."""
        data, _notes, aside = merge_state(self.state_file, self.state_payload())
        if aside:
            self.load_error = aside
        self.adopt(data)

    # -- who has a case open (two reviewers on one folder) ---------------------------
    @property
    def claims(self) -> Claims:
        if self._claims is None:
            self._claims = Claims(self.state_dir)
        return self._claims

    def claim(self, case: Case) -> Claim:
        """Note that this process has ``case`` open; the claim that stands: ours (``.mine``), or another reviewer's."""
        return self.claims.claim(case.case_id)

    def release(self, case: Case) -> None:
        """This process no longer has ``case`` open (another reviewer's claim is left alone)."""
        self.claims.release(case.case_id)

    def claimed_by(self, case: Case) -> Claim | None:
        """Another reviewer's live claim on ``case`` (``.line()``: "open by ann on ws-3 since 10:42"), or None."""
        return self.claims.claimed_by(case.case_id)

    # -- navigation ------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.cases)

    def index_of(self, case_id: str | None) -> int:
        for i, case in enumerate(self.cases):
            if case.case_id == case_id:
                return i
        return -1

    def step(self, start: int, direction: int, unreviewed_only: bool = False, least_sure_first: bool = False) -> int | None:
        """The next index from ``start`` in ``direction`` (+1/-1) in :meth:`order`, or None at its end."""
        return ordering.step(self.cases, start, direction, unreviewed_only, least_sure_first)

    def order(self, least_sure_first: bool = False) -> list[int]:
        """The cases' indices as the list shows them (:func:`.worklist_order.review_order`)."""
        return ordering.review_order(self.cases, least_sure_first)

    def first_unreviewed(self, uncertain_first: bool = False) -> int | None:
        todo = [i for i, c in enumerate(self.cases) if c.unreviewed]
        if uncertain_first:
            todo.sort(key=lambda i: not self.cases[i].uncertain)
        return todo[0] if todo else None

    def least_sure_first(self) -> list[int]:
        """Unreviewed cases' indices, lowest expected Dice first; not yet proposed last, in file order."""
        return ordering.least_sure_first(self.cases)

    def set_current(self, index: int, save: bool = True) -> Case:
        """``save=False``: the caller writes the state file itself (the dock, off its GUI thread)."""
        self.current = index
        if save:
            self.save()
        return self.cases[index]

    def set_status(self, case: Case, status: str, save: bool = True) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        case.status = status
        if save:
            self.save()

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.cases) for s in STATUSES}

    # -- proposals and drafts ----------------------------------------------------
    def proposal_path(self, case_id: str) -> Path:
        return self.state_dir / "proposals" / f"{case_id}.png"

    def draft_path(self, case_id: str) -> Path:
        return self.state_dir / "drafts" / f"{case_id}.png"

    def unsure_path(self, case_id: str) -> Path:
        """The cached proposal's doubt map (widget/quality_hint.py), as 0-255 at the network's size."""
        return self.state_dir / "unsure" / f"{case_id}.png"

    def save_proposal(self, case: Case, labels: np.ndarray, model_version: str, confidence: float,
                      convention: str = DEFAULT_CONVENTION) -> None:
        atomic_write_png(self.proposal_path(case.case_id), np.asarray(labels, dtype=np.uint8))
        self.record_proposal(case, model_version, confidence, convention)
        self.save()

    def record_proposal(self, case: Case, model_version: str, confidence: float,
                        convention: str = DEFAULT_CONVENTION) -> None:
        """Note who proposed ``case``, and in which lung convention (in memory; :meth:`save` or the dock's writer persists it)."""
        check_convention(convention)  # before anything changes
        case.model_version, case.confidence, case.convention = model_version, float(confidence), convention
        if case.status == NEW:
            case.status = PROPOSED

    def forget_proposal(self, case: Case) -> None:
        """The cached proposal no longer counts (drawn in another convention): the case is new again.

        In memory only; the dock's writer removes the proposal and draft files and saves the state.
        """
        case.model_version = case.confidence = case.convention = None
        if case.status in (PROPOSED, EDITED):
            case.status = NEW

    def save_draft(self, case_id: str, labels: np.ndarray) -> Path:
        """Atomic, so a crash mid-write keeps the previous draft; safe to call from a plain thread."""
        return atomic_write_png(self.draft_path(case_id), np.asarray(labels, dtype=np.uint8))

    def load_proposal(self, case_id: str, shape: tuple[int, ...]) -> np.ndarray | None:
        return read_labels(self.proposal_path(case_id), shape)

    def load_draft(self, case_id: str, shape: tuple[int, ...]) -> np.ndarray | None:
        return read_labels(self.draft_path(case_id), shape)


def _entry(case: Case) -> dict:
    """What the state file says of ``case``, to tell whether it changed."""
    return {"status": case.status, "model_version": case.model_version, "confidence": case.confidence,
            "error": case.error, "convention": case.convention}


def _discover(folder: Path) -> list[Case]:
    cases: list[Case] = []
    seen: set[str] = set()
    for path in list_images([folder]):
        base = safe_case_id(path.stem)
        case_id, n = base, 1
        while case_id in seen:  # a.png and a.tif in one folder are two cases
            n += 1
            case_id = f"{base}-{n}"
        seen.add(case_id)
        cases.append(Case(case_id, path))
    return cases


def read_labels(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """Labels saved for this case, or None if absent, unreadable or of another shape (image replaced)."""
    if not path.is_file():
        return None
    import imageio.v3 as iio

    try:
        labels = np.asarray(iio.imread(path))
    except Exception:  # a damaged draft is ignored rather than blocking the case
        return None
    return labels.astype(np.uint8, copy=False) if labels.shape == tuple(shape) else None
