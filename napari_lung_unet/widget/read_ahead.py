"""Case reads off the GUI thread: the case asked for, and a small cache of its neighbours.

A 4020×4892 16-bit PNG takes 0.4-1 s to decode, and a case's proposal and draft are two more
full-size PNGs; on the GUI thread that was a freeze at every case switch (issue 33: Previous and a
case-list click froze the window for ~0.5 s, a folder for ~3 s). Reading touches no Qt (PIL,
pydicom, numpy only), so two background threads read; the GUI thread only takes the result.

What is cached is one :class:`CaseRead` per case (its X-ray and both masks), for the case opened
last and the cases Previous and Next open from it. A read is used only if its files are unchanged
since it was read (same size and modification time, checked with a ``stat`` on the GUI thread):
an image or a mask replaced on disk is read again, never shown stale. A mask the dock's writer
still holds in memory is newer than any file and is taken from there by the caller.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..images.read import ImageError, XRay, read_xray
from ..store.worklist import read_labels

Signature = tuple[int, int] | None  # (size, mtime in ns); None: no such file
T = TypeVar("T")
KEEP = 3  # cached cases: the open one and its two neighbours (~120 MB each at 20 Mpx)


def signature(path: Path) -> Signature:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


@dataclass(frozen=True)
class CaseFiles:
    """What one case's read covers: its image, and the masks kept for it (proposal, draft)."""

    image: Path
    masks: tuple[Path, ...] = ()


@dataclass(frozen=True)
class CaseRead:
    files: CaseFiles
    xray: XRay | None  # None: unreadable (``error`` says why)
    masks: tuple[np.ndarray | None, ...]  # per mask path: the labels, or None (absent, damaged, another shape)
    signatures: tuple[Signature, ...]  # the image's, then each mask's, as they were before reading
    error: str | None = None

    def unchanged(self, skip: Callable[[Path], bool] = lambda _path: False) -> bool:
        """Whether every file is as it was read (a mask ``skip`` says is not read from disk is not checked)."""
        paths = (self.files.image, *self.files.masks)
        return all(skip(path) or signature(path) == old for path, old in zip(paths, self.signatures, strict=True))


def read_case(files: CaseFiles) -> CaseRead:
    """Read a case's X-ray and masks (on a worker thread). Signatures are taken before reading, so a
    file replaced during the read reads as changed."""
    signatures = (signature(files.image), *(signature(path) for path in files.masks))
    try:
        xray = read_xray(files.image)
    except ImageError as exc:
        return CaseRead(files, None, (), signatures, str(exc))
    shape = xray.pixels.shape
    return CaseRead(files, xray, tuple(read_labels(path, shape) for path in files.masks), signatures)


class ReadAhead:
    """The dock's reader threads, and the last few cases read (by the files they cover)."""

    def __init__(self) -> None:
        # two threads: a click on a far case is not queued behind a neighbour still being read
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lung-unet-read")
        self._reads: OrderedDict[CaseFiles, Future[CaseRead]] = OrderedDict()
        self.hits = 0  # opened cases whose read was already asked for (tests and benchmarks read it)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Any other read on the reader threads (listing a folder)."""
        return self._pool.submit(fn, *args)

    def request(self, files: CaseFiles) -> Future[CaseRead]:
        """Start reading ``files`` unless that read is cached; the oldest reads beyond :data:`KEEP` go."""
        future = self._reads.pop(files, None)
        if future is None or future.cancelled():
            future = self._pool.submit(read_case, files)
        self._reads[files] = future  # the newest at the end
        while len(self._reads) > KEEP:
            _files, old = self._reads.popitem(last=False)
            old.cancel()  # not started yet: never read; started: finishes and is dropped
        return future

    def cached(self, files: CaseFiles) -> bool:
        return files in self._reads and not self._reads[files].cancelled()

    def forget(self, files: CaseFiles) -> None:
        """Drop a read found stale; the next request reads the files again."""
        self._reads.pop(files, None)

    def done(self, path: Path) -> bool:
        """Whether a read of the image at ``path`` is cached and finished."""
        return any(files.image == path and future.done() for files, future in self._reads.items())

    def cancel(self) -> None:
        """Drop every cached read (another worklist opens)."""
        for future in self._reads.values():
            future.cancel()
        self._reads.clear()
