"""The heuristic that flags masks drawn in the other lung convention (retrocardiac lung included).

A model trained on the majority convention under-segments such a mask in one way: it misses a
large part of the true lung (recall < 0.9) while nearly everything it does mark is lung
(precision > 0.95). On inspection of the worst cases this picks those masks, not model failures.
"""

from __future__ import annotations

from training.evaluate import CaseScore


def looks_like_other_convention(score: CaseScore) -> bool:
    return score.recall < 0.9 and score.precision > 0.95
