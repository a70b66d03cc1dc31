"""A lock that holds on a network drive: a lock file created with O_CREAT|O_EXCL, with a time-out.

Why not ``flock``/``fcntl`` (the ``filelock`` package): on NFS mounted ``nolock``, on many SMB
setups and between a Linux and a Windows client, those locks are advisory, local to one machine
or silently absent, so two reviewers' processes would both "hold" the lock. Exclusive creation
of a file is one request the file server answers for everyone (NFSv3+, SMB), which is why MONAI
Label and Mercurial lock this way.

A holder that dies leaves its file behind, so a lock file is *stale*, and broken, when:

- its owner ran on this machine and that process no longer exists (a crash recovers at once), or
- this process has watched it stay the same (same holder, same modification time) for ``stale_after``
  seconds of its own clock (another machine's crash), or its modification time is ten times that
  old. Watching rather than comparing the file's time with ours keeps a clock that is ahead of the
  file server's from breaking a live lock. Holders keep their critical sections far shorter (a merge
  of one state file, one accept) and call :meth:`LockFile.refresh` in longer ones, so a live holder
  is never judged stale.

Breaking renames the stale file to a unique name first: of two processes breaking the same stale
lock only one rename succeeds, and a lock created meanwhile by a third is put back, not deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import time
import uuid
from pathlib import Path
from types import TracebackType

HOST = socket.gethostname()
#: this process's identity in lock and claim files: pids are reused, a random token is not
PROCESS_TOKEN = uuid.uuid4().hex
# (lock path, holder's token, modification time) -> when this process first saw that lock, on its own
# monotonic clock: shared by every LockFile of the process, so successive attempts add up
_FIRST_SEEN: dict[tuple[str, object, float], float] = {}


class LockTimeout(TimeoutError):
    """The lock stayed held by someone else past the time-out; the message names the holder."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a process of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_gone(owner: dict) -> bool:
    """Whether ``owner`` (host, pid, token) is a process of this machine that no longer exists."""
    pid = owner.get("pid")
    if owner.get("host") != HOST or not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return owner.get("token") != PROCESS_TOKEN  # an earlier process with our pid
    return not pid_alive(pid)


def read_owner(path: Path) -> dict | None:
    """The JSON a lock or claim file holds, or None when it is gone or unreadable."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read(4096))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


class LockFile:
    """``with LockFile(path): ...``: one holder at a time across processes and machines."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = 60.0, stale_after: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.stale_after = stale_after
        self._token: str | None = None

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        delay = 0.002
        token = uuid.uuid4().hex
        owner = json.dumps({"host": HOST, "pid": os.getpid(), "token": PROCESS_TOKEN, "lock": token,
                            "time": time.time()}).encode("utf-8")
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._break_if_stale():
                    continue
                if time.monotonic() > deadline:
                    raise LockTimeout(self._held_message()) from None
                time.sleep(delay * (0.5 + random.random()))  # jitter: two waiters do not retry in step
                delay = min(delay * 2, 0.05)
                continue
            try:
                os.write(fd, owner)
            finally:
                os.close(fd)
            self._token = token
            return

    def release(self) -> None:
        """Remove the lock file if it is still ours (a holder judged stale and broken must not remove the next one's)."""
        token, self._token = self._token, None
        if token is None:
            return
        owner = read_owner(self.path)
        if owner is not None and owner.get("lock") == token:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def refresh(self) -> None:
        """Say "still working" in a long critical section, so other machines do not judge the lock stale."""
        if self._token is not None:
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def __enter__(self) -> LockFile:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    # -- stale locks --------------------------------------------------------------------
    def _break_if_stale(self) -> bool:
        """Remove the lock file if its holder is gone; True when it was removed (by us or meanwhile)."""
        owner = read_owner(self.path)
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return True  # released meanwhile: try again at once
        age = time.time() - mtime  # by two clocks (ours, the file server's): trusted only when far over
        key = (str(self.path), owner.get("lock") if owner else None, mtime)
        watched = time.monotonic() - _FIRST_SEEN.setdefault(key, time.monotonic())
        if owner is None and watched < 2.0 and age < 10 * self.stale_after:
            return False  # being written right now (created, not yet filled)
        if not ((owner is not None and owner_gone(owner)) or watched > self.stale_after or age > 10 * self.stale_after):
            return False
        _FIRST_SEEN.pop(key, None)
        aside = self.path.with_name(f"{self.path.name}.stale-{uuid.uuid4().hex[:12]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True  # another waiter broke it first
        moved = read_owner(aside)
        if owner is not None and (moved is None or moved.get("lock") != owner.get("lock")):
            # between our look and our rename the stale lock was broken and a live one taken: put it back
            with contextlib.suppress(OSError):
                os.link(aside, self.path)  # fails if yet another lock exists: then that one stands
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aside)
        return True

    def _held_message(self) -> str:
        owner = read_owner(self.path) or {}
        who = f"process {owner.get('pid')} on {owner.get('host')}" if owner else "another process"
        return (f"{self.path} is held by {who} for over {self.timeout:.0f} s; if no lung-unet runs there, "
                f"delete the file (it is broken after {self.stale_after:.0f} s without change)")
