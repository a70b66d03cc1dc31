"""What keeps one ``lung-unet predict`` run to itself: its output folder locked, SIGTERM handled like Ctrl-C.

Two runs appending to one results.csv rewrite it from their own memory when they finish, so
one run's rows vanish; the lock makes the second refuse in one line instead. It is an advisory
``flock`` on the output folder itself, so it adds no file to the folder and dies with the process
(a SIGKILL leaves no stale lock).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwind like Ctrl-C, so the worker processes are killed on the way out."""


class OutputBusy(ValueError):
    """Another run holds the output folder."""


@contextlib.contextmanager
def output_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder`` for this run; refuse at once when another run holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; runs there are not guarded
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusy(
                f"{folder}: another lung-unet predict is writing into this folder; wait for it to finish or choose another -o"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` in the main thread (elsewhere: unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_output_outside_inputs(output: Path, inputs: list[str]) -> None:
    """Refuse an output folder that is, or lies inside, an input folder: its masks would be read as X-rays next time."""
    out = output.resolve()
    for item in inputs:
        folder = Path(item)
        if not folder.is_dir():
            continue
        inside = folder.resolve()
        if out == inside or inside in out.parents:
            where = "is" if out == inside else "is inside"
            raise ValueError(
                f"-o {output} {where} the input folder {item}: masks written there would be read as X-rays "
                "by the next run; choose an output folder outside the inputs"
            )
