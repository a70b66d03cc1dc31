"""Waiting for a case to be shown: a folder and a case open off the GUI thread (issue 33), so a test
that opens one waits until the dock shows it before looking at the layers."""

from __future__ import annotations

from typing import Any

WAIT_MS = 120_000


def wait_case_open(qtbot: Any, dock: Any, case_id: str | None = None, timeout: int = WAIT_MS) -> None:
    """Until no read is in flight and the open case is ``case_id`` (any readable case when None)."""
    review = dock.review

    def shown() -> bool:
        case = review.case
        return review.navigation.settled and case is not None and (case_id is None or case.case_id == case_id)

    qtbot.waitUntil(shown, timeout=timeout)


def wait_settled(qtbot: Any, dock: Any, timeout: int = WAIT_MS) -> None:
    """Until no folder or case is being read (a case may have failed to open)."""
    qtbot.waitUntil(lambda: dock.review.navigation.settled, timeout=timeout)
