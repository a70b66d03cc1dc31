"""Atomic file writes: a crash never leaves a half-written mask, record or model."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
_TEMP_PREFIX_BYTES = 120

# Fault injection for crash tests: called with (temp file, target) just before the rename that
# publishes a file, so a test can SIGKILL the process at exactly the n-th rename of an operation.
# None in normal use.
before_replace: Callable[[Path, Path], None] | None = None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it over ``target`` on success.

    The temp file lives in the same folder so that ``os.replace`` is a same-filesystem
    rename, which POSIX and Windows both guarantee to be atomic.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # the temp name carries the target's (so a leftover says whose it was), cut short: a 240-byte
    # target name must not make a temp name over the 255-byte limit
    prefix = os.fsdecode(os.fsencode(target.name)[:_TEMP_PREFIX_BYTES])
    fd, tmp_name = tempfile.mkstemp(prefix=f".{prefix}.", suffix=".tmp" + target.suffix[:16], dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes 0600, and some writers (safetensors) recreate the file as 0600: set the usual
        # permissions once the writer is done, so every final file gets them
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace(tmp, target)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# what atomic_path's mkstemp names look like: .<target name>.<8 random characters>.tmp<target suffix>
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[^.]+)?$")


def remove_leftovers(folder: str | os.PathLike[str]) -> int:
    """Delete the temp files that writers killed before their rename left in ``folder``; return how many.

    Only call it when no other process writes into ``folder``: its temp files would go too.
    """
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if _TEMP_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def atomic_write(target: str | os.PathLike[str], writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``target``."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(target, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(target: str | os.PathLike[str], obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default)
    return atomic_write_bytes(target, (text + "\n").encode("utf-8"))


def encode_png(array: np.ndarray) -> bytes:
    """A 2-D uint8/uint16 array (or H×W×3 uint8) as PNG file bytes (to hash before writing, say)."""
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", array, extension=".png")


def atomic_write_png(target: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write a 2-D uint8/uint16 array (or H×W×3 uint8) as PNG, atomically."""
    return atomic_write_bytes(target, encode_png(array))


def atomic_write_csv(
    target: str | os.PathLike[str], fieldnames: list[str], rows: Iterable[dict[str, Any]], restval: str = "",
) -> Path:
    import csv

    def writer(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            out = csv.DictWriter(handle, fieldnames=fieldnames, restval=restval)
            out.writeheader()
            out.writerows(rows)

    return atomic_write(target, writer)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
