"""A repeating 20 ms QTimer "heartbeat": it records when the Qt event loop gets to run, so the largest
gap between beats is how long the GUI was frozen (tests/test_responsiveness.py, tests/test_refine_dock.py)."""

from __future__ import annotations

import time

import numpy as np
from qtpy.QtCore import QTimer

BEAT_MS = 20


class Heartbeat:
    def __init__(self) -> None:
        self.beats: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(BEAT_MS)
        self.timer.timeout.connect(lambda: self.beats.append(time.perf_counter()))

    def __enter__(self) -> Heartbeat:
        self.beats = [time.perf_counter()]
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.stop()
        self.beats.append(time.perf_counter())

    @property
    def worst_gap(self) -> float:
        return float(np.max(np.diff(self.beats)))
