"""The held-back share of a fine-tune's corrections: predictable, stratified, never most of them."""

from __future__ import annotations

import random

import pytest

from training.finetune_data import Holdout, SplitCase, choose_holdout, holdout_count, mixed_conventions


def _cases(n: int, source: str = "siteA", convention: str = "lung-fields", start: int = 0) -> list[SplitCase]:
    return [SplitCase(f"{source}-case{i}:{i:064x}", source, convention) for i in range(start, start + n)]


def _held_keys(cases: list[SplitCase], split: Holdout) -> set[str]:
    return {cases[i].key for i in split.held}


@pytest.mark.parametrize(("n", "held"), [(2, 1), (3, 1), (4, 1), (7, 1), (8, 2), (10, 2), (11, 2), (12, 3), (40, 10), (41, 10)])
def test_a_quarter_rounded_down_at_least_one(n: int, held: int) -> None:
    assert holdout_count(n) == held
    split = choose_holdout(_cases(n))
    assert len(split.held) == held and len(split.train) == n - held and not split.trained_on_held
    assert set(split.held).isdisjoint(split.train) and set(split.held) | set(split.train) == set(range(n))


def test_from_four_corrections_up_at_least_70_percent_are_trained_on() -> None:
    for n in range(4, 200):
        split = choose_holdout(_cases(n // 2, "a") + _cases(n - n // 2, "b", "whole-lung"))
        assert len(split.train) / n >= 0.70, n


def test_one_correction_is_both_trained_on_and_checked() -> None:
    assert choose_holdout(_cases(1)) == Holdout((0,), (0,), True)


def test_no_corrections_is_an_error() -> None:
    with pytest.raises(ValueError, match="no corrections"):
        choose_holdout([])


def test_the_same_corrections_give_the_same_share_in_any_order() -> None:
    cases = _cases(5, "a") + _cases(6, "b") + _cases(3, "c", "whole-lung")
    first = _held_keys(cases, choose_holdout(cases))
    for seed in range(20):
        shuffled = cases[:]
        random.Random(seed).shuffle(shuffled)
        assert _held_keys(shuffled, choose_holdout(shuffled)) == first


def test_the_share_is_spread_over_sources_and_conventions_in_proportion() -> None:
    # the bench's first run: 8 corrections from two sites with two conventions, 5 + 3
    cases = _cases(5, "montgomery") + _cases(3, "v7labs", "whole-lung")
    split = choose_holdout(cases)
    groups = sorted((cases[i].source, cases[i].convention) for i in split.held)
    assert groups == [("montgomery", "lung-fields"), ("v7labs", "whole-lung")]
    # 12 from one site, 4 from another: 3 and 1 held back
    cases = _cases(12, "a") + _cases(4, "b")
    held = [cases[i].source for i in choose_holdout(cases).held]
    assert sorted(held) == ["a", "a", "a", "b"]


def test_one_source_in_two_conventions_is_two_groups() -> None:
    cases = _cases(4, "site") + _cases(4, "site", "whole-lung", start=4)
    held = [cases[i].convention for i in choose_holdout(cases).held]
    assert sorted(held) == ["lung-fields", "whole-lung"]


def test_a_new_correction_keeps_most_of_the_earlier_choice() -> None:
    # ranking by a hash of each case's own key: adding a case does not reshuffle the others
    cases = _cases(11)
    before = _held_keys(cases, choose_holdout(cases))
    after = _held_keys(cases + _cases(1, start=11), choose_holdout(cases + _cases(1, start=11)))
    assert len(before) == 2 and len(after) == 3 and before <= after


def test_mixed_conventions_are_named_with_their_counts() -> None:
    assert mixed_conventions(_cases(4)) is None
    warning = mixed_conventions(_cases(5, "a") + _cases(3, "b", "whole-lung"))
    assert warning is not None and "5 lung-fields" in warning and "3 whole-lung" in warning


def test_store_records_give_source_and_convention(tmp_path) -> None:
    """A real corrections store: cases from two worklist folders; records written before conventions
    existed name none and count as lung fields."""
    from napari_lung_unet.images.phantom import make_phantom
    from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsStore
    from training.data import discover_pairs
    from training.finetune_data import correction_cases, split_corrections

    store = CorrectionsStore(tmp_path / "corrections")
    for i in range(9):
        image, labels = make_phantom((64, 64), seed=40 + i)
        site = "hospital-a" if i < 6 else "hospital-b"
        store.add(image, labels, CorrectionRecord(f"case{i}", f"/worklists/{site}/case{i}.png", f"{i:064x}", "base", 0.1))
    pairs = discover_pairs(store.root)
    cases = correction_cases(pairs)
    assert [c.source for c in cases] == ["/worklists/hospital-a"] * 6 + ["/worklists/hospital-b"] * 3
    assert {c.convention for c in cases} == {"lung-fields"}
    train, held, both = split_corrections(pairs)
    assert len(held) == 2 and len(train) == 7 and not both
    assert {cases[pairs.index(p)].source for p in held} == {"/worklists/hospital-a", "/worklists/hospital-b"}
    assert {p.case_id for p in split_corrections(pairs[::-1])[1]} == {p.case_id for p in held}
