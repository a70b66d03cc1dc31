"""The loop's payoff on the clinician's own cases: per proposing model version, how many cases were
reviewed and how much of each proposal had to change.

Every record holds the version that proposed its mask and the share of the proposal's pixels the
clinician changed before accepting (CorrectionRecord.fraction_changed). A fine-tune that pays off
shows as a version whose proposals needed less changing than its parent's did. Re-accepting a case
replaces its record, so each case counts once, under the version whose proposal was accepted last.
This reads only the small JSON records (never images), so it is quick, but it is still disk I/O: the
GUI calls it off its thread.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from .corrections import CorrectionsError, CorrectionsStore


@dataclass(frozen=True)
class VersionPayoff:
    version: str  # the model version that proposed these cases
    cases: int
    median_changed: float  # share of the proposal's pixels changed, 0-1
    mean_changed: float
    first_accepted: str  # UTC ISO time of its earliest accept: versions are listed in the order they were used
    last_accepted: str


def payoff_by_version(store: str | Path | CorrectionsStore) -> tuple[list[VersionPayoff], int]:
    """(one row per proposing version, oldest use first; how many records could not be read).

    An unreadable or garbled record is counted, not guessed at: fine-tuning refuses it by name."""
    store = store if isinstance(store, CorrectionsStore) else CorrectionsStore(store)
    changed: dict[str, list[float]] = {}
    times: dict[str, list[str]] = {}
    unreadable = 0
    for case_id in store.case_ids():
        try:
            record = store.record(case_id)
        except CorrectionsError:
            unreadable += 1
            continue
        changed.setdefault(record.model_version, []).append(record.fraction_changed)
        times.setdefault(record.model_version, []).append(record.accepted)
    rows = [VersionPayoff(v, len(f), statistics.median(f), statistics.fmean(f), min(times[v]), max(times[v]))
            for v, f in changed.items()]
    return sorted(rows, key=lambda r: (r.first_accepted, r.version)), unreadable


def by_version(rows: list[VersionPayoff]) -> dict[str, VersionPayoff]:
    return {r.version: r for r in rows}
