"""A kept candidate, checked again on the corrections accepted since it was made (issue 32, the verdict).

At a site where the model is already good, a fine-tune's gain is often under a point, and the one to
four corrections it held back cannot tell that from noise: the verdict keeps the current model and
says how many more cases would settle it (at Shenzhen every candidate after 5, 10 and 20 corrections
gained 0.4-0.9 points on the next cases and none was promoted; docs/benchmarks.md). The corrections
the clinician accepts afterwards are new held-out cases for that candidate: neither model trained on
them. This scores the candidate and the current model on them, each case in the convention it was
accepted in, with the same paired test as the verdict (training/gain_test.py).

Those cases were proposed by the current model, and the clinician's masks keep its outline wherever
they did not change it: the comparison leans towards the current model, so a gain it shows is not an
artefact of the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.store.corrections import RECORDS, CorrectionsStore

from .data import Pair, discover_pairs
from .evaluate import load_cases, score_cases
from .gain_test import MAX_SUGGESTED, GainTest, gain_test


@dataclass(frozen=True)
class Recheck:
    version: str  # the candidate
    current: str
    cases: list[str]  # the corrections accepted since the candidate was made, scored
    before: list[float]  # the current model's Dice on each
    after: list[float]  # the candidate's
    test: GainTest

    def line(self) -> str:
        n, before, after = len(self.cases), sum(self.before) / len(self.cases), sum(self.after) / len(self.cases)
        head = (f"On your {n} correction{'s' * (n != 1)} accepted since {self.version} was made: "
                f"{self.current} {before:.4f}, {self.version} {after:.4f} ({100 * (after - before):+.2f} points)")
        if self.test.gained:
            return f"{head}: a gain beyond their noise ({self.test.method})."
        if self.test.worse:
            return f"{head}: worse; keep {self.current}."
        more = ("" if self.test.needed is None or self.test.needed - n > MAX_SUGGESTED
                else f" Accept {self.test.needed - n} more cases to measure a gain this size.")
        return f"{head}: no measurable gain yet.{more}"


def recheck(version: str, store: Path, registry: Registry | None = None, device: str = "cpu") -> Recheck:
    """Score ``version`` against the current model on the corrections in ``store`` accepted after it was made."""
    registry = registry or Registry()
    current = registry.current_version()
    if version == current:
        raise ValueError(f"{version} is the current model already: nothing to compare it with")
    card = registry.card(version)  # a clear error for a version that is not there
    trained = set(card.extra.get("finetune", {}).get("train_cases", []))
    since = datetime.fromisoformat(card.created)
    pairs = [p for p in _store_pairs(store) if _accepted(store, p) > since and p.case_id not in trained]
    if not pairs:
        raise ValueError(f"no corrections in {store} were accepted since {version} was made ({card.created}): "
                         "accept some cases, then check again")
    cases = load_cases(pairs)
    before = [s.dice for s in score_cases(Predictor(registry.load(current), device=device), cases)]
    after = [s.dice for s in score_cases(Predictor(registry.load(version), device=device), cases)]
    return Recheck(version, current, [p.case_id for p in pairs], before, after, gain_test(before, after))


def _store_pairs(store: Path) -> list[Pair]:
    if not (store / RECORDS).is_dir():
        raise ValueError(f"{store} is not a corrections store (no records/ folder)")
    return discover_pairs(store)


def _accepted(store: Path, pair: Pair) -> datetime:
    return datetime.fromisoformat(CorrectionsStore(store).record(pair.case_id).accepted)
