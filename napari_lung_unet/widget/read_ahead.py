"""Read the next worklist case in the background, so Next does not wait for a 20-Mpx file to decode.

A 4020×4892 16-bit PNG takes ~0.4 s to read; on the GUI thread that is a freeze at every case
switch. Reading touches no Qt (PIL / pydicom / numpy only), so one background thread does it
while the clinician works on the current case, and the GUI thread only picks up the result.
A result is used only if the file is unchanged since it was read (same size and modification
time): an image replaced on disk is never shown stale. A failed read is not reported here; the
GUI thread reads the file again and shows the error as it always does.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..images.read import XRay, read_xray


def _signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


class ReadAhead:
    """At most one file read ahead; asking for another one drops the previous request."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lung-unet-read-ahead")
        self._pending: tuple[Path, tuple[int, int], Future[XRay]] | None = None
        self.hits = 0  # reads served from here (tests and benchmarks read it)

    def request(self, path: Path) -> None:
        if self._pending is not None and self._pending[0] == path:
            return
        self.cancel()
        try:
            signature = _signature(path)
        except OSError:
            return  # missing now: the GUI thread's own read will say so
        self._pending = (path, signature, self._pool.submit(read_xray, path))

    def done(self, path: Path) -> bool:
        return self._pending is not None and self._pending[0] == path and self._pending[2].done()

    def take(self, path: Path) -> XRay | None:
        """The read-ahead image of ``path`` (waiting if it is still being read), or None."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        requested, signature, future = pending
        if requested != path:
            future.cancel()
            return None
        try:
            xray = future.result()
            unchanged = _signature(path) == signature
        except Exception:
            return None
        if not unchanged:
            return None
        self.hits += 1
        return xray

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending[2].cancel()
            self._pending = None
