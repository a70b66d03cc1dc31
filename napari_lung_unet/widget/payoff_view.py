"""The Model tab's payoff on the clinician's own cases: per model version, the cases reviewed and how
much of each proposal had to change (median and mean), newest version first.

The rows come from :func:`napari_lung_unet.store.payoff.payoff_by_version`, which reads the store's
records: call it off the GUI thread and hand its rows to :meth:`PayoffView.show_rows`. The words are
:func:`text_for`'s, a pure function, so they are tested without a viewer.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QSizePolicy

from ..store.payoff import VersionPayoff

NONE_YET = "No cases accepted yet: each model's share of changed pixels will show here."
FIRST = "{version}: {cases}, {median} changed (median; mean {mean})"
BEFORE = "{version} before it: {cases}, {median} (mean {mean})"
TIP = ("Cases you accepted, grouped by the model version that proposed them, and the share of each "
       "proposal's pixels you changed before accepting. Less changed: the model pays off on your work.")


def text_for(rows: list[VersionPayoff]) -> str:
    """One line per version, the one used last first: ``ft-…: 14 cases, 1.8 % changed (median; mean 2.1 %)``,
    then ``default-3 before it: 20 cases, 4.6 % (mean 5.0 %)``."""
    if not rows:
        return NONE_YET
    lines = []
    for i, row in enumerate(sorted(rows, key=lambda r: (r.first_accepted, r.version), reverse=True)):
        words = {"version": row.version, "cases": f"{row.cases} case{'s' if row.cases != 1 else ''}",
                 "median": _percent(row.median_changed), "mean": _percent(row.mean_changed)}
        lines.append((FIRST if i == 0 else BEFORE).format(**words))
    return "\n".join(lines)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.1f} %"


class PayoffView(QLabel):
    """A label in the Model tab; wraps to the dock's width."""

    def __init__(self) -> None:
        super().__init__(NONE_YET)
        self.setWordWrap(True)
        self.setToolTip(TIP)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # never widens the dock

    def show_rows(self, rows: list[VersionPayoff]) -> None:
        self.setText(text_for(rows))
