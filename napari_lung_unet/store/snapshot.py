"""A fine-tune's own copy of the corrections store, taken in one moment under the store's lock.

A fine-tune reads every accepted case several times over minutes (the split, the arrays, the
held-out check). Meanwhile reviewers keep accepting and re-accepting; a re-accept deletes the files
of the accept it replaces, so a fine-tune reading the live store died with ``FileNotFoundError``.
Instead it trains on a snapshot: each committed record, and the files it names, hard-linked (copied
where the drive has no hard links) into ``<store>/.snapshots/<id>/`` while the store's lock is held,
which takes milliseconds per case. Store files are never changed in place (every write is a new
file renamed into place), so a hard link keeps exactly the accepted bytes. The snapshot is a store
of the same layout, read and checked by :class:`~.corrections.CorrectionsStore` like the real one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

from .corrections import IMAGES, MASKS, PROPOSALS, RECORDS, SEGS, CorrectionsError, CorrectionsStore
from .lockfile import HOST, PROCESS_TOKEN, owner_gone, read_owner

SNAPSHOTS = ".snapshots"
OWNER_FILE = ".owner.json"
STALE_SNAPSHOT_S = 2 * 24 * 3600.0  # another machine's snapshot this old belongs to a fine-tune that died


@dataclass
class Snapshot:
    """The cases a fine-tune trains on: ``root`` is a store of their records and files, frozen at ``taken``."""

    root: Path  # named as the store is (a case's dataset name stays the store's name)
    store: Path  # the live store it was taken from
    n_cases: int
    accepted_up_to: str | None  # the newest record's ``accepted`` time (UTC ISO), None when empty
    taken: float  # epoch seconds

    def up_to(self) -> str:
        """``10:42`` (local time; with the date when it was not today)."""
        if self.accepted_up_to is None:
            return "never"
        try:
            when = datetime.fromisoformat(self.accepted_up_to).astimezone()
        except ValueError:
            return self.accepted_up_to
        return when.strftime("%H:%M") if when.date() == datetime.now().astimezone().date() else when.strftime("%Y-%m-%d %H:%M")

    def close(self) -> None:
        """Delete the snapshot's links; the live store is untouched."""
        shutil.rmtree(self.root.parent, ignore_errors=True)

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def take_snapshot(store_root: str | os.PathLike[str]) -> Snapshot:
    """Link every committed case of the store at ``store_root`` into a fresh snapshot, under the store's lock.

    Accepts wait for the lock only while the links are made. A record that cannot be read is linked
    as it is: reading the snapshot refuses it by name, as reading the store would.
    """
    store = CorrectionsStore(store_root)
    if not (store.root / RECORDS).is_dir():
        raise CorrectionsError(f"{store.root}: not a corrections store (no {RECORDS}/ folder)")
    remove_stale_snapshots(store.root)
    root = _new_folder(store.root)
    newest: str | None = None
    n = 0
    try:
        with store.lock() as lock:
            for i, case_id in enumerate(store.case_ids()):
                if i % 50 == 0:
                    lock.refresh()  # copying on a drive without hard links can take a while
                _link(store.record_path(case_id), root / RECORDS / f"{case_id}.json")
                n += 1
                try:
                    record = store.record(case_id)
                except CorrectionsError:
                    continue
                newest = max(newest or record.accepted, record.accepted)
                for folder, name in CorrectionsStore._files_of(record, case_id):  # the store's own list: proposals too
                    if name and "/" not in name and "\\" not in name:
                        with contextlib.suppress(FileNotFoundError):  # missing: the snapshot's check names it
                            _link(store.root / folder / name, root / folder / name)
    except BaseException:
        shutil.rmtree(root.parent, ignore_errors=True)
        raise
    return Snapshot(root, store.root, n, newest, time.time())


def _new_folder(store_root: Path) -> Path:
    """``<store>/.snapshots/<id>/<store's name>`` (under a temporary folder when the store is read-only),
    with its owner noted beside it."""
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    try:
        folder = store_root / SNAPSHOTS / name
        folder.mkdir(parents=True)
    except OSError:
        folder = Path(tempfile.mkdtemp(prefix="lung_unet_snapshot_"))
    (folder / OWNER_FILE).write_text(json.dumps({"host": HOST, "pid": os.getpid(), "token": PROCESS_TOKEN}) + "\n")
    root = folder / (store_root.resolve().name or "corrections")
    for sub in (IMAGES, MASKS, SEGS, PROPOSALS, RECORDS):
        (root / sub).mkdir(parents=True)
    return root


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except FileNotFoundError:
        raise
    except OSError:  # no hard links on this drive (some SMB shares), or another file system
        shutil.copyfile(source, target)


def remove_stale_snapshots(store_root: str | os.PathLike[str]) -> int:
    """Delete snapshots whose fine-tune is gone (a process of this machine that ended, or two days old); how many."""
    folder = Path(store_root) / SNAPSHOTS
    removed = 0
    if not folder.is_dir() or folder.is_symlink():
        return 0
    for entry in folder.iterdir():
        if entry.is_symlink() or not entry.is_dir():
            continue
        owner = read_owner(entry / OWNER_FILE)
        try:
            old = time.time() - entry.stat().st_mtime > STALE_SNAPSHOT_S
        except FileNotFoundError:
            continue
        if old or (owner is not None and owner_gone(owner)):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed
