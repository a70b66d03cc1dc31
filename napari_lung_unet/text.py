"""Text that is printed: file names and messages must not forge or hide output lines."""

from __future__ import annotations


def printable(text: object) -> str:
    """``str(text)`` with control characters escaped (``\\n``, ``\\x1b``, ``\\udcff``...).

    A file name is user data: with a raw newline it could start a fake ``FAILED`` or summary
    line, with an escape sequence it could rewrite the terminal. Ordinary non-ASCII stays as is.
    """
    s = str(text)
    if s.isprintable():
        return s
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in s)
