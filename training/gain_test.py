"""Did a fine-tune gain on the site's own held-out corrections, more than their noise?

A fine-tune that has nothing to learn still moves every case's Dice a little. Six fine-tunes of
default-3 on 7 whole-lung corrections from covid_v7labs, a site it had trained on, moved their one
held-out case by -0.87, -0.72, -0.63, -0.47, +0.26 and +0.30 points (bench/finetune_promotion.py,
docs/benchmarks.md; the issue's dock run: 0.9574 -> 0.9571, -0.03): root mean square 0.59 points,
:data:`CASE_NOISE`, measured with :data:`NOISE_DF` = 6 degrees of freedom.

The test: a one-sided paired t-test on the per-case changes d = after - before, whose variance pools
that known noise with these cases' own spread (s² = (6·0.59² + (n-1)·sd²) / (6 + n - 1), Student's t
with 6 + n - 1 degrees of freedom; the prior measurement counts as 6 more cases of pure noise). The
mean gain must exceed t(95 %) · s / √n. So it decides from one held-out case up: one case must gain
more than 1.15 points (the most a case moved with nothing to learn was 0.87); with many cases it
becomes the ordinary paired t-test. A plain t-test on 2 cases (1 degree of freedom) would ask a
gain of 6.3 standard deviations. A gain it cannot yet tell from noise says how many held-out cases
would tell a gain of that size, its spread as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CASE_NOISE = 0.0059  # Dice: RMS change of a held-out case under a fine-tune with nothing to learn (see above)
NOISE_DF = 6  # the fine-tunes CASE_NOISE was measured on
CONFIDENCE = 0.95
MAX_SUGGESTED = 60  # "accept N more cases" is said only for N up to this: beyond it, no sample settles it soon
MAX_HOLDOUT = 1000


@dataclass(frozen=True)
class GainTest:
    n: int
    mean_gain: float  # mean of after - before, Dice
    spread: float  # the pooled standard deviation of one case's change
    threshold: float  # the mean gain needed to tell a gain from noise with these n cases
    method: str  # plain words: which test
    needed: int | None  # held-out cases that would tell a gain the size of this one (None: no gain seen, or too many)

    @property
    def gained(self) -> bool:
        return self.mean_gain > self.threshold

    @property
    def worse(self) -> bool:
        """A loss as sure as the gain would have to be: it got worse, not just 'no gain'."""
        return self.mean_gain < -self.threshold


def gain_test(before: list[float], after: list[float]) -> GainTest:
    """The paired test on per-case Dice before and after (same cases, same order)."""
    if len(before) != len(after) or not before:
        raise ValueError(f"need the same cases scored before and after, got {len(before)} and {len(after)}")
    d = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    n, mean = len(d), float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    threshold, spread = _threshold(n, sd)
    method = (f"one held-out case must gain more than {threshold * 100:.2f} points, its noise {CASE_NOISE * 100:.2f} "
              f"points (t-test, {NOISE_DF} df, {CONFIDENCE:.0%})" if n == 1 else
              f"one-sided paired t-test on {n} cases, the known noise pooled in ({NOISE_DF + n - 1} df, {CONFIDENCE:.0%}): "
              f"mean gain must exceed {threshold * 100:.2f} points (per-case SD {spread * 100:.2f})")
    needed = None
    if 0 < mean <= threshold:
        spread_seen = sd if n > 1 else CASE_NOISE  # a larger sample is expected to spread as this one does
        needed = next((m for m in range(n + 1, MAX_HOLDOUT) if mean > _threshold(m, spread_seen)[0]), None)
    return GainTest(n, mean, spread, threshold, method, needed)


def _threshold(n: int, sd: float) -> tuple[float, float]:
    """(the mean gain n cases must exceed, the pooled per-case SD) for cases whose changes spread ``sd``."""
    df = NOISE_DF + n - 1
    spread = math.sqrt((NOISE_DF * CASE_NOISE**2 + (n - 1) * sd**2) / df)
    return float(stats.t.ppf(CONFIDENCE, df)) * spread / math.sqrt(n), spread


def more_corrections(needed_holdout: int | None, corrections: int, fraction: float) -> int | None:
    """How many more corrections to accept so that ``needed_holdout`` are held back, or None when
    that is not a useful thing to ask (no gain seen, or more than :data:`MAX_SUGGESTED`)."""
    if needed_holdout is None:
        return None
    total = max(corrections + 1, math.ceil(needed_holdout / fraction - 1e-9))
    more = total - corrections
    return more if more <= MAX_SUGGESTED else None
