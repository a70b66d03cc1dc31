"""Text that is printed: file names and messages must not forge or hide output lines, and progress
must read as lines in a log file.

Progress goes to stderr as a tqdm bar on a terminal and as plain lines every few seconds anywhere
else: tqdm redraws its bar with carriage returns, and written to a log file (``lung-unet finetune
2> log``, nohup, a job scheduler) that became one line of thousands of bars.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm


def printable(text: object) -> str:
    """``str(text)`` with control characters escaped (``\\n``, ``\\x1b``, ``\\udcff``...).

    A file name is user data: with a raw newline it could start a fake ``FAILED`` or summary
    line, with an escape sequence it could rewrite the terminal. Ordinary non-ASCII stays as is.
    """
    s = str(text)
    if s.isprintable():
        return s
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in s)


PLAIN_EVERY_S = 10.0  # a line this often off a terminal: a 2-minute fine-tune leaves about a dozen


class PlainProgress:
    """The part of tqdm's interface the CLIs use, printed as whole lines."""

    def __init__(self, total: int | None, desc: str, unit: str, file: TextIO, leave: bool = True, own_eta: bool = True,
                 every_s: float = PLAIN_EVERY_S) -> None:
        self.total, self.desc, self.unit, self.file, self.every_s = total, desc, unit, file, every_s
        self.leave, self.own_eta = leave, own_eta
        self.n = 0
        self.postfix = ""
        self._start = time.monotonic()
        self._printed_at: float | None = None
        self._printed_n = -1

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        # the first step at once (it shows the run started and its pace), then every few seconds
        if self._printed_at is None or now - self._printed_at >= self.every_s:
            self._print(now)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def write(self, message: str, file: TextIO | None = None) -> None:
        print(message, file=file or self.file, flush=True)

    def close(self) -> None:
        # the last count is on record, unless the caller prints its own summary (tqdm's leave=False)
        if self.leave and self.n and self.n != self._printed_n:
            self._print(time.monotonic())

    def _print(self, now: float) -> None:
        elapsed = now - self._start
        done = f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"
        parts = [f"{self.desc}: {done}"]
        if self.total:
            parts.append(f"{100 * self.n / self.total:.0f} %")
        parts.append(f"{elapsed:.0f} s")
        if self.own_eta and self.total and 0 < self.n < self.total:
            parts.append(f"about {elapsed / self.n * (self.total - self.n):.0f} s left")
        if self.postfix:
            parts.append(self.postfix)
        print(", ".join(parts), file=self.file, flush=True)
        self._printed_at, self._printed_n = now, self.n


def progress_bar(total: int | None, desc: str, unit: str, disable: bool = False, file: TextIO | None = None,
                 leave: bool = True, own_eta: bool = True) -> tqdm | PlainProgress:
    """tqdm on a terminal; :class:`PlainProgress` when ``file`` (default stderr) is a file or a pipe.

    ``own_eta=False``: the caller puts a better time left in the postfix (the fine-tune's includes
    the check after training), so the bar's rate-based one, for the steps alone, is not shown.
    """
    out = file if file is not None else sys.stderr
    if disable or out.isatty():
        fmt = None if own_eta else "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
        return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=out, leave=leave, dynamic_ncols=True, bar_format=fmt)
    return PlainProgress(total, desc, unit, out, leave, own_eta)
