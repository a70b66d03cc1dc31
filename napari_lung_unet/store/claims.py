"""Who has a worklist case open: a claim with a time-out, so a second reviewer sees "open by ann since 10:42".

A claim is one small file per case, ``<state dir>/claims/<case>.json``, naming the user, the machine,
the process and when it expires. It is advice, not a lock: the second reviewer can still look at
the case, and the dock asks before accepting it. A claim lapses when it expires (a reviewer who
walked away, a machine that crashed) or, on this machine, as soon as its process is gone.

Claims are taken and released under the worklist's lock file (see :mod:`.lockfile`), so two docks
opening the same case at once cannot both get it.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .atomic import atomic_write_json
from .corrections import store_name
from .lockfile import HOST, PROCESS_TOKEN, LockFile, owner_gone, read_owner

CLAIMS_DIR = "claims"
CLAIM_TTL_S = 20 * 60.0  # a case open for 20 minutes without a renewal is taken to be abandoned
USER_ENV = "LUNG_UNET_USER"  # the name other reviewers see; default: the login name


def current_user() -> str:
    name = os.environ.get(USER_ENV, "").strip()
    if name:
        return name[:80]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a container
        return f"pid {os.getpid()}"


@dataclass(frozen=True)
class Claim:
    """One reviewer's hold on a case."""

    case_id: str
    user: str
    host: str
    pid: int
    since: float  # epoch seconds, when the case was opened
    expires: float  # epoch seconds; renewed while the reviewer works on the case
    token: str = ""  # the claiming process (lockfile.PROCESS_TOKEN)

    @property
    def mine(self) -> bool:
        """Taken by this process."""
        return self.host == HOST and self.pid == os.getpid() and self.token == PROCESS_TOKEN

    @property
    def lapsed(self) -> bool:
        return time.time() > self.expires or owner_gone({"host": self.host, "pid": self.pid, "token": self.token})

    def line(self) -> str:
        """``open by ann on ws-3 since 10:42`` (local time), for the dock's status line."""
        since = datetime.fromtimestamp(self.since).strftime("%H:%M")
        return f"open by {self.user} on {self.host} since {since}"


class Claims:
    """The claims of one worklist state folder."""

    def __init__(self, state_dir: str | os.PathLike[str], user: str | None = None, ttl: float = CLAIM_TTL_S) -> None:
        self.folder = Path(state_dir) / CLAIMS_DIR
        self.user = user or current_user()
        self.ttl = ttl

    def _path(self, case_id: str) -> Path:
        return self.folder / f"{store_name(case_id)}.json"

    def _lock(self) -> LockFile:
        self.folder.mkdir(parents=True, exist_ok=True)
        return LockFile(self.folder / ".lock", timeout=10.0, stale_after=10.0)

    def current(self, case_id: str) -> Claim | None:
        """The live claim on ``case_id`` (anyone's, ours included), or None."""
        data = read_owner(self._path(case_id))
        if data is None:
            return None
        try:
            claim = Claim(str(data["case_id"]), str(data["user"])[:80], str(data["host"])[:255], int(data["pid"]),
                          float(data["since"]), float(data["expires"]), str(data.get("token", "")))
        except (KeyError, TypeError, ValueError):
            return None  # a damaged claim claims nothing
        return None if claim.lapsed or claim.case_id != case_id else claim

    def claimed_by(self, case_id: str) -> Claim | None:
        """Another reviewer's live claim on ``case_id``, or None (free, or ours)."""
        claim = self.current(case_id)
        return None if claim is None or claim.mine else claim

    def claim(self, case_id: str) -> Claim:
        """Take (or renew) ``case_id`` for this process, unless another reviewer holds it.

        Returns the claim that stands: ours (``.mine``), or the other reviewer's, untouched.
        """
        with self._lock():
            held = self.current(case_id)
            if held is not None and not held.mine:
                return held
            now = time.time()
            claim = Claim(case_id, self.user, HOST, os.getpid(), held.since if held else now, now + self.ttl, PROCESS_TOKEN)
            atomic_write_json(self._path(case_id), claim.__dict__)
            return claim

    def release(self, case_id: str) -> None:
        """Give ``case_id`` back, if this process holds it (another's claim is never removed)."""
        with self._lock():
            held = self.current(case_id)
            if held is not None and held.mine:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path(case_id))
