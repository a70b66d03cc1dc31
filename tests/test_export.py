"""``lung-unet export``: the corrections store as a flat images/ + masks/ dataset."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from napari_lung_unet.cli import main
from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsStore
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.settings import corrections_dir
from training.data import discover_pairs


def fill_store(root: Path, n: int = 2) -> CorrectionsStore:
    store = CorrectionsStore(root)
    for i in range(n):
        image, labels = make_phantom((64, 64), seed=i, dtype=np.uint8)
        store.add(image, labels, CorrectionRecord(f"case{i}", f"/x/case{i}.png", "0" * 64, "v1", 0.1))
    return store


def test_export_default_store(tmp_path: Path, capsys):
    store = fill_store(corrections_dir())
    out = tmp_path / "dataset"
    assert main(["export", "--output", str(out)]) == 0
    assert sorted(p.name for p in (out / "images").iterdir()) == ["case0.png", "case1.png"]
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["case0.png", "case1.png"]
    assert not (out / "records").exists()
    np.testing.assert_array_equal(iio.imread(out / "masks" / "case1.png"), iio.imread(store.mask_path("case1")))
    assert "exported 2 cases" in capsys.readouterr().out
    # the export is a dataset the trainer reads as such
    assert [p.case_id for p in discover_pairs(out)] == ["case0", "case1"]


def test_export_with_records_and_rerun(tmp_path: Path):
    fill_store(tmp_path / "store", n=1)
    out = tmp_path / "out"
    for _ in range(2):  # re-running overwrites rather than duplicating
        assert main(["export", "--corrections", str(tmp_path / "store"), "-o", str(out), "--records"]) == 0
    assert [p.name for p in (out / "records").iterdir()] == ["case0.json"]
    assert [p.name for p in (out / "images").iterdir()] == ["case0.png"]


def test_export_errors_are_one_line(tmp_path: Path, capsys):
    assert main(["export", "--corrections", str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == 1
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["export", "--corrections", str(tmp_path / "empty"), "-o", str(tmp_path / "o")]) == 1
    assert "no accepted corrections" in capsys.readouterr().err
