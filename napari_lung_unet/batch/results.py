"""``<output>/results.csv``: one row per input of ``lung-unet predict``, appended as the run goes.

A researcher feeds this table into the next analysis, so it stays plain CSV that
``pandas.read_csv`` reads without options, and a SIGKILL at any moment must not corrupt it:

- every row is one ``os.write`` of a whole line on an ``O_APPEND`` descriptor, then ``fsync``;
  a kill can at worst leave the last line torn (no trailing newline);
- :func:`read_rows` ignores such a torn line, and :meth:`ResultsTable.open` rewrites the file
  atomically without it (and with one row per input, the newest) before appending again.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..store.atomic import atomic_write_csv

RESULTS_NAME = "results.csv"
OK, FAILED = "ok", "failed"


@dataclass
class Row:
    input: str
    output: str
    status: str  # OK or FAILED
    error: str = ""
    right_lung_px: int | None = None
    left_lung_px: int | None = None
    right_lung_cm2: float | None = None  # only when the file states its pixel spacing (DICOM)
    left_lung_cm2: float | None = None
    confidence: float | None = None
    uncertain: bool | None = None
    model_version: str = ""
    seconds: float | None = None  # worker time for this input: read, pre-process, post-process, write
    mask_sha256: str = ""  # of the mask file as written: lets a re-run verify the mask without decoding it

    def as_record(self) -> dict[str, str]:
        return {key: _cell(value) for key, value in asdict(self).items()}


FIELDS = [f.name for f in fields(Row)]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    # the table is one line per input: a newline in an error or a file name would split a row
    return str(value).replace("\r", "\\r").replace("\n", "\\n")


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    """The newest complete row per input; a torn last line and rows of another layout are ignored."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    text = data.decode("utf-8", errors="replace")
    if not text.endswith("\n"):  # the line a kill cut short
        text = text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header != FIELDS:
        return {}  # another version's table: nothing in it can prove an output complete
    rows: dict[str, dict[str, str]] = {}
    for values in reader:
        if len(values) == len(FIELDS):
            record = dict(zip(FIELDS, values))
            rows[record["input"]] = record
    return rows


class ResultsTable:
    """The one writer of a results table (the main process; workers send their rows to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, str]] = {}
        self._fd: int | None = None

    def open(self) -> ResultsTable:
        """Read what an earlier run left, rewrite it whole (repairing a torn line), then append from here."""
        self.rows = read_rows(self.path)
        self._rewrite()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        return self

    def append(self, row: Row) -> None:
        record = row.as_record()
        buffer = io.StringIO()
        csv.DictWriter(buffer, fieldnames=FIELDS).writerow(record)  # "\r\n" like the rewrite
        assert self._fd is not None, "ResultsTable.open() first"
        os.write(self._fd, buffer.getvalue().encode("utf-8"))  # one write: a line is whole or torn, never interleaved
        os.fsync(self._fd)
        self.rows[record["input"]] = record

    def close(self) -> None:
        """Stop appending and leave one row per input (a re-run appended new rows for retried inputs)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._rewrite()

    def _rewrite(self) -> None:
        atomic_write_csv(self.path, FIELDS, self.rows.values())

    def __enter__(self) -> ResultsTable:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
