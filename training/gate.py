"""The fine-tuning gate: what was checked, against what, and whether the candidate may replace its parent.

Each check compares the candidate with its parent on the same data and says so in plain words.
A check that could not run (no base data on disk, no uncorrected images) is reported as such,
never counted as passed: where nothing measured the model on what it already did well, the
decision is "unverified" and promotion needs a person's explicit yes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from .gain_test import gain_test, more_corrections

Kind = Literal["holdout", "base", "reference", "estimate", "agreement"]
Group = tuple[str, str]  # (dataset, or "" for all of a convention's cases; convention)
Status = Literal["promoted", "rejected", "unverified"]


@dataclass
class Check:
    kind: Kind
    name: str  # e.g. "held-out corrections", "montgomery validation"
    what: str  # plain words: what was scored, on how many cases
    rule: str  # plain words: what the candidate had to do
    before: float | None = None
    after: float | None = None
    passed: bool | None = None  # None: could not be checked
    worse: bool = False  # held-out corrections: measurably worse, not only "no measurable gain"
    more_cases: int | None = None  # held-out corrections: accepting this many more would measure a gain of the size seen

    def line(self) -> str:
        if self.passed is None:
            return f"NOT CHECKED  {self.name}: {self.what}"
        verdict = "passed" if self.passed else "FAILED"
        numbers = _numbers(self)
        return f"{verdict:<12} {self.name}: {self.what}: {numbers} ({self.rule})"

    def to_dict(self) -> dict:
        return asdict(self)


def holdout_check(before: list[float], after: list[float], trained_on_them: bool, corrections: int, fraction: float) -> Check:
    """The user's site, scored case by case on corrections never trained on: the candidate must gain
    more than their noise (training/gain_test.py says how, and why that much). A fine-tune that learns
    nothing at a site the model knows moved its held-out case by -0.9 to +0.3 points; at a site it had
    never seen, the same 7 corrections gain points. A correction that was also trained on (the only
    one) is tested the same way: a gain there shows only that it was learnt."""
    n = len(before)
    what = f"Dice on {n} held-out correction{'s' if n != 1 else ''}" + (
        " (also trained on: only one correction, so this shows it was learnt, not that it generalises)" if trained_on_them else ", never trained on"
    )
    test = gain_test(before, after)
    more = more_corrections(test.needed, corrections, fraction)
    return Check("holdout", "held-out corrections", what, f"must gain more than their noise: {test.method}",
                 float(np.mean(before)), float(np.mean(after)), test.gained, worse=test.worse, more_cases=more)


def base_checks(before: dict[Group, float], after: dict[Group, float], counts: dict[Group, int], tolerance: float, dataset_tolerance: float) -> list[Check]:
    """Within each convention: the mean over its base validation cases, then each dataset alone.
    A mixed mean hid a 1.28-point loss on Montgomery (12 cases) behind Shenzhen (65), and a
    mean over both conventions would let a gain in one pay for forgetting in the other.

    A convention whose cases all come from one dataset has no mean of its own: it is that dataset's
    check, on the same cases, with the tolerance for one dataset's few cases. Held to the pooled
    mean's, 6 old whole-lung Shenzhen cases at -0.66 points rejected a candidate that gained 5 points
    at a new site while every other check held (docs/benchmarks.md, "Half the new site at once, and one dataset's cases")."""
    datasets: dict[str, int] = {}
    for dataset, convention in counts:
        datasets[convention] = datasets.get(convention, 0) + bool(dataset)
    checks = []
    for dataset, convention in sorted(counts, key=lambda g: (g[1], g[0] != "", g[0])):
        key, n = (dataset, convention), counts[(dataset, convention)]
        if not dataset and datasets[convention] == 1:
            continue
        if dataset:
            name, what, tol = f"{dataset} validation ({convention})", f"Dice on {n} {dataset} validation cases drawn {convention}", dataset_tolerance
        else:
            sets = sorted(d for d, c in counts if d and c == convention)
            name, what, tol = f"original validation data ({convention})", f"Dice on {n} validation cases of {', '.join(sets)} drawn {convention}", tolerance
        checks.append(Check("base", name, what, f"may fall at most {tol * 100:.1f} points", before[key], after[key],
                            after[key] >= before[key] - tol))
    return checks


REFERENCE_FLOOR = 0.8  # a parent below this on the reference does not segment it: keeping its score shows nothing


# reference masks that are the shipped model's own proposals: they measure agreement with the
# parent, not accuracy, so they decide only where no true masks in that convention were measured
AGREEMENT_ONLY = ("lung-fields",)


def reference_checks(
    before: dict[str, float], after: dict[str, float], counts: dict[str, int], tolerance: float,
    measured: frozenset[str] = frozenset(),
) -> list[Check]:
    """The reference set shipped with the package, in each convention the model knows: real X-rays
    that are always there, but from one COVID-19 collection, not the user's site.

    ``measured``: conventions the original validation data (true masks) was scored in. There an
    agreement-only reference check is reported but does not decide: a fine-tune on whole-lung
    corrections moves a two-convention model's lung-fields masks on these COVID-19 images by ~2
    points of agreement while its lung-fields accuracy on Montgomery and Shenzhen moves by < 0.5."""
    what = {"whole-lung": "Dice with V7 Labs' whole-lung masks on {n} shipped reference X-rays (one COVID-19 collection, not your site)",
            "lung-fields": "Dice with the shipped model's own lung-fields masks on {n} shipped reference X-rays (agreement, not accuracy)"}
    checks = []
    for c in sorted(counts):
        name, text = f"reference set ({c})", what.get(c, "Dice on {n} shipped reference X-rays").format(n=counts[c])
        if before[c] < REFERENCE_FLOOR:
            checks.append(not_checked("reference", name, f"{text}: the parent scores only {before[c]:.2f} there, so it cannot "
                                      "tell what this model keeps"))
            continue
        if c in AGREEMENT_ONLY and c in measured:
            checks.append(not_checked("reference", name, f"{text}: {before[c]:.4f} -> {after[c]:.4f}, for information: the "
                                      f"original validation data drawn {c} decides, with true masks"))
            continue
        checks.append(Check("reference", name, text, f"may fall at most {tolerance * 100:.1f} points", before[c], after[c],
                            after[c] >= before[c] - tolerance))
    return checks


def estimate_check(drift: float, budget: float, source: str) -> Check:
    """Not a measurement on images: a second-order estimate of how far the candidate's pixel
    predictions moved on the original training X-rays, from numbers shipped with the model."""
    return Check("estimate", "estimated forgetting",
                 f"how far predictions on the original training X-rays moved, estimated from {source} "
                 "(KL divergence in nats per pixel; numbers shipped with the model, no images)",
                 f"must stay under {budget:g}", None, drift, drift <= budget)


def agreement_check(agreement: float, floor: float, n: int) -> Check:
    return Check("agreement", "your uncorrected images",
                 f"mean Dice between the parent's and the candidate's masks on {n} of your uncorrected images",
                 f"must stay at least {floor:.2f}", None, agreement, agreement >= floor)


def not_checked(kind: Kind, name: str, why: str) -> Check:
    return Check(kind, name, why, "", passed=None)


def decide(checks: list[Check], confirmed: bool, parent: str = "the current model") -> tuple[Status, str]:
    """Rejected if any check failed (the held-out corrections did not gain more than their noise,
    or the candidate forgot); promoted if everything that ran passed and the base data was measured
    (or a person said yes); otherwise unverified, waiting for that yes."""
    failed = [c for c in checks if c.passed is False]
    if failed:
        first = failed[0]
        if first.kind == "holdout" and not first.worse:
            more = f"; accept {first.more_cases} more cases to measure a smaller gain" if first.more_cases else ""
            return "rejected", (f"no measurable gain on your cases: kept {parent} (held-out corrections {_numbers(first)}, "
                                f"{first.rule}){more}")
        return "rejected", f"not promoted: {first.name} failed: {_numbers(first)} ({first.rule})"
    held = _held_words(checks)
    if any(c.kind == "base" and c.passed for c in checks):
        return "promoted", f"promoted: {held} and kept its accuracy on the original validation data"
    if any(c.kind == "reference" and c.passed for c in checks):
        return "promoted", (f"promoted: {held} and kept its masks on the shipped reference X-rays in "
                            "every convention (the original validation data is not on this computer; the reference is not your site)")
    if confirmed:
        return "promoted", "promoted on your explicit yes: the original validation data was not on this computer, so it could not be measured"
    return "unverified", ("not promoted yet: the original validation data is not on this computer, so nothing measured how the "
                          "candidate does on the X-rays the model already handled well; promote it only if you accept that")


def _held_words(checks: list[Check]) -> str:
    held = next((c for c in checks if c.kind == "holdout" and c.before is not None), None)
    if held is None:
        return "it gained on the held-out corrections"
    return f"it gained on the held-out corrections more than their noise ({_numbers(held)})"


def _numbers(check: Check) -> str:
    if check.before is None:
        return f"{check.after:.4g}"
    return f"{check.before:.4f} -> {check.after:.4f}"
