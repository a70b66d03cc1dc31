"""Which review order cuts a clinician's work the most (issue 29, item 5).

A reviewer goes through a folder in some order and corrects each case to the target (seconds per
case from bench/_reviewer.py, which do not depend on the order). The figure of merit: the seconds
spent until every case among the folder's worst 20 % (by the proposal's true Dice) has been seen,
i.e. the sum of per-case seconds up to the last of them in the order. Orders: file order, random
(mean over RANDOM_ORDERS permutations), and least sure first (expected_dice, nn/quality.py).
"""

from __future__ import annotations

import numpy as np

WORST_SHARE = 0.2
RANDOM_ORDERS = 200


def seconds_to_fix_worst(order: list[int], seconds: list[float], dice_before: list[float], share: float = WORST_SHARE) -> float:
    """Seconds until the last of the worst ``share`` of cases (lowest true Dice) is reached in ``order``."""
    n_worst = max(1, round(share * len(seconds)))
    worst = set(np.argsort(dice_before, kind="stable")[:n_worst].tolist())
    total, left = 0.0, set(worst)
    for i in order:
        total += seconds[i]
        left.discard(i)
        if not left:
            break
    return total


def order_lines(expected: list[float], seconds: list[float], dice_before: list[float], seed: int = 0) -> list[str]:
    """The comparison as markdown lines."""
    n = len(seconds)
    rng = np.random.default_rng(seed)
    file_order = seconds_to_fix_worst(list(range(n)), seconds, dice_before)
    random = float(np.mean([seconds_to_fix_worst(list(rng.permutation(n)), seconds, dice_before) for _ in range(RANDOM_ORDERS)]))
    least_sure = seconds_to_fix_worst(list(np.argsort(expected, kind="stable")), seconds, dice_before)
    everything = sum(seconds)
    return [
        f"Seconds until the worst {WORST_SHARE:.0%} of {n} cases (by true Dice) are corrected to the target "
        f"(all {n}: {everything:.0f} s):",
        "",
        "| order | seconds | share of reviewing everything |",
        "|---|---|---|",
        f"| file order | {file_order:.0f} | {file_order / everything:.0%} |",
        f"| random (mean of {RANDOM_ORDERS}) | {random:.0f} | {random / everything:.0%} |",
        f"| least sure first (expected_dice) | {least_sure:.0f} | {least_sure / everything:.0%} |",
    ]
