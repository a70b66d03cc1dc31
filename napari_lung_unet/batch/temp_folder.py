"""A temporary folder that names its owner: removed on exit, on Ctrl-C and on SIGTERM, and by the next run when its owner died.

A DICOMweb fetch downloads whole studies into a temporary folder. ``TemporaryDirectory`` removed it
on Ctrl-C, but SIGTERM (a job scheduler's stop, ``kill``) ended the process without unwinding and left
1.3 GB in TMPDIR that no later run removed (issue 31 #6). The folder's name now carries its owner's
pid (``<prefix><pid>-<random>``): SIGTERM unwinds through the ``finally`` that removes it, and a
SIGKILL's leftover is removed by the next run that uses the same prefix, once that pid is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .guard import sigterm_unwinds


@contextlib.contextmanager
def owned_temp_folder(prefix: str) -> Iterator[Path]:
    """A fresh folder ``<TMPDIR>/<prefix><pid>-<random>``, removed on leaving (SIGTERM included).

    Stale folders of ``prefix`` whose owner is no longer running are removed first.
    """
    remove_stale(prefix)
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    try:
        with sigterm_unwinds():
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale(prefix: str, where: Path | None = None) -> list[Path]:
    """Remove ``<prefix><pid>-*`` folders in ``where`` (default: TMPDIR) whose pid is not running; return them."""
    root = Path(where or tempfile.gettempdir())
    pattern = re.compile(re.escape(prefix) + r"(\d+)-[^/]+$")
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match and entry.is_dir() and not entry.is_symlink() and not _running(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running, and not ours to judge
        return True
    except OverflowError:
        return False
    return True
