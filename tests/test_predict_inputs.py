"""``lung-unet predict`` on inputs a new user gives (issue 31 #8): a path that does not exist, ``--seg`` on PNGs."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_lung_unet.cli import main
from napari_lung_unet.images.phantom import make_phantom


def _png(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    iio.imwrite(path, make_phantom((96, 96), seed=5, dtype=np.uint8)[0])
    return path


def test_a_path_that_does_not_exist_is_refused_up_front_and_nothing_is_written(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture,
) -> None:
    real = _png(tmp_path / "in", "a.png")
    gone, out = tmp_path / "in" / "typo.png", tmp_path / "out"
    assert main(["predict", str(real), str(gone), "-o", str(out), "--model", str(tiny_model_dir), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: input not found: {gone}"], err
    assert not out.exists()
    # before the model is loaded: a missing model is not what it reports
    assert main(["predict", str(gone), "-o", str(out), "--model", str(tmp_path / "no_model"), "--device", "cpu"]) == 1
    assert capsys.readouterr().err.strip() == f"error: input not found: {gone}"
    assert not out.exists()


def test_seg_on_png_inputs_says_that_segs_are_for_dicom_inputs(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture,
) -> None:
    _png(tmp_path / "in", "a.png")
    _png(tmp_path / "in", "b.png")
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_model_dir), "--device", "cpu", "--seg"]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "--seg" in line]
    assert notes == ["note: --seg writes a SEG only for DICOM inputs: 0 of the 2 input(s) here are DICOM"], err
    assert not list(out.glob("*.dcm"))
