"""Which base cases a fine-tune replays: an even spread, and on request a share in the corrections' convention."""

from __future__ import annotations

from pathlib import Path

from training.data import Pair
from training.finetune_data import replay_subset


def _pairs(n: int, dataset: str, convention: str) -> list[Pair]:
    return [Pair(f"{dataset}{i}", Path(f"{dataset}{i}.png"), (Path(f"{dataset}{i}_mask.png"),), dataset, convention) for i in range(n)]


BASE = _pairs(60, "montgomery", "lung-fields") + _pairs(30, "shenzhen", "lung-fields") + _pairs(10, "shenzhen-wl", "whole-lung")


def test_an_even_spread_by_default_and_a_matched_share_on_request() -> None:
    even = replay_subset(BASE, 20, {"whole-lung"}, 0.0)
    assert len(even) == 20 and sum(p.convention == "whole-lung" for p in even) == 2  # its share of the base data
    matched = replay_subset(BASE, 20, {"whole-lung"}, 0.5)
    assert len(matched) == 20 and len(set(matched)) == 20
    assert sum(p.convention == "whole-lung" for p in matched) == 10
    assert {p.dataset for p in matched} == {"montgomery", "shenzhen", "shenzhen-wl"}  # the rest still covers every dataset


def test_a_share_larger_than_the_convention_has_takes_all_it_has() -> None:
    matched = replay_subset(BASE, 40, {"whole-lung"}, 0.75)
    assert len(matched) == 40 and sum(p.convention == "whole-lung" for p in matched) == 10
    assert replay_subset(BASE, 200, {"whole-lung"}, 0.5) == BASE  # asked for more than there is: all of it
    assert replay_subset(BASE, 20, {"sideways"}, 0.5) == replay_subset(BASE, 20, {"sideways"}, 0.0)
