"""``lung-unet evaluate`` says what it scores (issue 31 #8): the convention of each folder and why, and no temp folder left.

The model is a real two-convention U-Net whose lung-fields output draws no lung and whose whole-lung
output draws lung everywhere, so each score shows which convention was used.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from napari_lung_unet.cli import main


def _copy(dataset: Path, images: Path, masks: Path) -> None:
    shutil.copytree(dataset / "images", images)
    shutil.copytree(dataset / "masks", masks)


def _evaluate(images: Path, masks: Path, model: Path, csv: Path, capsys: pytest.CaptureFixture) -> tuple[str, pd.DataFrame]:
    assert main(["evaluate", "--images", str(images), "--masks", str(masks), "--model", str(model),
                 "--device", "cpu", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    (said,) = [line for line in out.splitlines() if line.startswith(f"masks {masks}: ")]
    return said, pd.read_csv(csv)


@pytest.fixture
def own_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_freely_named_folder_is_scored_in_the_models_default_and_says_so(
    tmp_path: Path, phantom_dataset: Path, two_convention_model_dir: Path, own_tmpdir: Path, capsys: pytest.CaptureFixture,
) -> None:
    images, masks = tmp_path / "site" / "xrays", tmp_path / "site" / "truth"
    _copy(phantom_dataset, images, masks)
    said, scores = _evaluate(images, masks, two_convention_model_dir, tmp_path / "s.csv", capsys)
    assert "scoring every case as drawn lung-fields, both's default" in said and "--convention" in said, said
    assert "(6 lung-fields)" in said
    assert set(scores.convention) == {"lung-fields"} and (scores.dice == 0).all()
    assert list(own_tmpdir.iterdir()) == []  # the linked folder is gone


@pytest.mark.parametrize(
    ("name", "says", "convention"),
    [("covid_v7labs", "covid_v7labs is a dataset this package knows", "whole-lung"),  # shipped: its own convention
     ("my_hospital", "scoring every case as drawn lung-fields, both's default", "lung-fields")],  # not guessed from a name
)
def test_an_images_and_masks_folder_is_read_by_name_only_when_it_is_a_shipped_dataset(
    name: str, says: str, convention: str,
    tmp_path: Path, phantom_dataset: Path, two_convention_model_dir: Path, own_tmpdir: Path, capsys: pytest.CaptureFixture,
) -> None:
    root = tmp_path / name
    _copy(phantom_dataset, root / "images", root / "masks")
    said, scores = _evaluate(root / "images", root / "masks", two_convention_model_dir, tmp_path / "s.csv", capsys)
    assert says in said and f"(6 {convention})" in said, said
    assert set(scores.convention) == {convention}
    assert (scores.dice > 0).all() if convention == "whole-lung" else (scores.dice == 0).all()
    assert list(own_tmpdir.iterdir()) == []
