"""The loop's payoff on the clinician's own cases, per proposing model version (issue 32, item 4)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from napari_lung_unet.cli import main
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.settings import corrections_dir
from napari_lung_unet.store.corrections import RECORDS, CorrectionRecord, CorrectionsStore
from napari_lung_unet.store.payoff import payoff_by_version
from napari_lung_unet.store.source_image import sha256_of

# (case, proposing version, share of the proposal changed): the parent's cases, then the fine-tune's
ACCEPTS = [("a", "default-3", 0.046), ("b", "default-3", 0.080), ("c", "default-3", 0.012), ("d", "default-3", 0.050),
           ("e", "ft-1", 0.020), ("f", "ft-1", 0.010), ("g", "ft-1", 0.018)]


def _accept(store: CorrectionsStore, case: str, version: str, changed: float, seed: int) -> None:
    image, labels = make_phantom((64, 64), seed=seed)
    store.add(image, labels, CorrectionRecord(case, f"/site/{case}.png", sha256_of(image), version, changed))


def _filled(root: Path) -> CorrectionsStore:
    store = CorrectionsStore(root)
    for i, (case, version, changed) in enumerate(ACCEPTS):
        _accept(store, case, version, changed, seed=i)
    return store


def _records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / RECORDS).glob("*.json"))]


def test_cases_are_grouped_by_the_version_that_proposed_them(tmp_path: Path) -> None:
    store = _filled(tmp_path / "store")
    _accept(store, "a", "ft-1", 0.004, seed=0)  # re-accepted under the fine-tune: counts once, there
    rows, unreadable = payoff_by_version(store)
    assert unreadable == 0
    records = _records(tmp_path / "store")
    assert [r.version for r in rows] == ["default-3", "ft-1"]  # in the order they were used
    for row in rows:
        mine = [r["fraction_changed"] for r in records if r["model_version"] == row.version]
        assert row.cases == len(mine)
        assert row.median_changed == statistics.median(mine) and abs(row.mean_changed - sum(mine) / len(mine)) < 1e-12
    assert sum(r.cases for r in rows) == len(records) == len({c for c, _, _ in ACCEPTS})


def test_a_garbled_record_is_counted_not_guessed(tmp_path: Path) -> None:
    store = _filled(tmp_path / "store")
    (tmp_path / "store" / RECORDS / "b.json").write_text("{not json")
    rows, unreadable = payoff_by_version(store)
    assert unreadable == 1 and sum(r.cases for r in rows) == len(ACCEPTS) - 1
    assert payoff_by_version(tmp_path / "no-store") == ([], 0)


def test_the_words_put_the_newest_version_first() -> None:
    from napari_lung_unet.widget.payoff_view import NONE_YET, text_for
    from napari_lung_unet.store.payoff import VersionPayoff

    rows = [VersionPayoff("default-3", 20, 0.046, 0.05, "2026-12-01T10:00:00+00:00", "2026-12-01T12:00:00+00:00"),
            VersionPayoff("ft-1", 14, 0.018, 0.021, "2026-12-02T09:00:00+00:00", "2026-12-02T11:00:00+00:00")]
    assert text_for(rows).splitlines() == ["ft-1: 14 cases, 1.8 % changed (median; mean 2.1 %)",
                                           "default-3 before it: 20 cases, 4.6 % (mean 5.0 %)"]
    assert text_for([]) == NONE_YET


def test_lung_unet_models_prints_each_versions_payoff(base_registry: Registry, capsys) -> None:
    """The shipped default-3 is in every registry: its row shows the cases it proposed; "base" proposed none."""
    _filled(corrections_dir())
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "REVIEWED" in out[0] and "CHANGED (MEDIAN/MEAN)" in out[0]
    start = out[0].index("REVIEWED")
    rows = {line[2:].split()[0]: line for line in out[1:]}
    assert rows["base"][start:].split()[:2] == ["-", "-"]
    changed = [c for _, v, c in ACCEPTS if v == "default-3"]
    median, mean = statistics.median(changed), sum(changed) / len(changed)
    assert rows["default-3"][start:].split()[:4] == [str(len(changed)), "cases", f"{median:.1%}", "/"]
    assert f"{median:.1%} / {mean:.1%}" in rows["default-3"]
