"""``<output>/results.csv``: one row per input of ``lung-unet predict``, appended as the run goes.

A researcher feeds this table into the next analysis, so it stays plain CSV that
``pandas.read_csv`` reads without options, and a SIGKILL at any moment must not corrupt it:

- every row is one ``os.write`` of a whole line on an ``O_APPEND`` descriptor, then ``fsync``;
  a kill can at worst leave the last line torn (no trailing newline);
- :func:`read_rows` ignores such a torn line, and :meth:`ResultsTable.open` rewrites the file
  atomically without it (and with one row per input, the newest) before appending again;
- columns a user added are kept (empty in new rows); a table that cannot be used whole is copied
  to ``results.csv.unused`` first and the run says so in a note, so nothing is silently lost or redone;
- a table written before a column existed (``convention``, ``expected_dice``) is still ours: the column is added at
  its end, empty in the old rows, which then read as :data:`LEGACY` says.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..images.conventions import DEFAULT_CONVENTION
from ..store.atomic import atomic_write_bytes, atomic_write_csv

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
    confidence: float | None = None  # the same number as expected_dice (its name before issue 29), for older readers
    uncertain: bool | None = None  # flagged for a look: expected_dice below --flag-below
    model_version: str = ""
    convention: str = ""  # the lung convention the mask is drawn in (napari_lung_unet/images/conventions.py)
    seconds: float | None = None  # worker time for this input: read, pre-process, post-process, write
    mask_sha256: str = ""  # of the mask file as written: lets a re-run verify the mask without decoding it
    expected_dice: float | None = None  # the Dice this mask expects against a clinician's (nn/quality.py)

    def as_record(self) -> dict[str, str]:
        return {key: _cell(value) for key, value in asdict(self).items()}


FIELDS = [f.name for f in fields(Row)]
# columns added after tables were already written: an old table lacks them and is still read
# (they are appended to its header); an empty cell reads as the value every row had before
LEGACY: dict[str, str] = {"convention": DEFAULT_CONVENTION, "expected_dice": ""}


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    # the table is one line per input: a newline in an error or a file name would split a row;
    # and it is UTF-8: a message quoting an undecodable file name keeps its bytes as \udcxx
    text = str(value).replace("\r", "\\r").replace("\n", "\\n")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class Parsed:
    """What an existing results.csv holds: its columns (ours and the user's), a row per input, and what did not parse."""

    columns: list[str]
    rows: dict[str, dict[str, str]]
    problem: str = ""  # why some or all of it could not be used; "" when all of it was


def parse(path: Path) -> Parsed:
    """Read results.csv: the newest complete row per input. A torn last line is dropped quietly (a kill
    leaves it); columns the user added are kept; anything else that does not parse is named in ``problem``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Parsed(list(FIELDS), {})
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Parsed(list(FIELDS), {}, f"not UTF-8 text (byte {exc.start})")
    if not text.endswith("\n"):  # the line a kill cut short
        text = text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return Parsed(list(FIELDS), {})
        missing = [name for name in FIELDS if name not in header and name not in LEGACY]
        if missing or len(set(header)) != len(header) or "" in header:
            why = f"missing column(s) {', '.join(missing)}" if missing else "repeated or empty column names"
            return Parsed(list(FIELDS), {}, f"not a lung-unet results table ({why})")
        rows: dict[str, dict[str, str]] = {}
        bad = 0
        for values in reader:
            if len(values) == len(header):
                record = dict(zip(header, values))
                rows[record["input"]] = record
            else:
                bad += 1
    except csv.Error as exc:
        return Parsed(list(FIELDS), {}, f"not CSV ({exc})")
    header += [name for name in LEGACY if name not in header]  # rewritten with it, empty in the old rows
    return Parsed(header, rows, f"{bad} line(s) with the wrong number of cells" if bad else "")


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    """The newest complete row per input; a torn last line and tables of another layout are ignored."""
    return parse(path).rows


def input_key_of(row: Row) -> str:
    return _cell(row.input)


class ResultsTable:
    """The one writer of a results table (the main process; workers send their rows to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, str]] = {}
        self.columns: list[str] = list(FIELDS)
        self.notes: list[str] = []  # for the user: what of an earlier table could not be used, and where it is kept
        self._fd: int | None = None

    def open(self) -> ResultsTable:
        """Read what an earlier run left, rewrite it whole (repairing a torn line), then append from here.

        A table with lines it cannot use is copied aside first, so a user's data is never lost by the rewrite.
        """
        parsed = parse(self.path)
        self.rows, self.columns = parsed.rows, parsed.columns
        if parsed.problem:
            kept = self._keep_aside()
            redo = "its inputs are done again" if not parsed.rows else "the rows it could read are kept"
            self.notes.append(f"{self.path} is {parsed.problem}: copied to {kept.name}; {redo}")
        self._rewrite()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        return self

    def append(self, row: Row) -> None:
        # a user's columns keep their values for this input: the new result replaces only ours
        record = {**self.rows.get(input_key_of(row), {}), **row.as_record()}
        buffer = io.StringIO()
        csv.DictWriter(buffer, fieldnames=self.columns, restval="").writerow(record)  # "\r\n" like the rewrite
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
        atomic_write_csv(self.path, self.columns, self.rows.values(), restval="")

    def _keep_aside(self) -> Path:
        """Copy the table as it is to results.csv.unused[-N] (never over an earlier copy); return the copy."""
        n, target = 1, self.path.with_name(self.path.name + ".unused")
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.unused-{n}")
        atomic_write_bytes(target, self.path.read_bytes())
        return target

    def __enter__(self) -> ResultsTable:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
