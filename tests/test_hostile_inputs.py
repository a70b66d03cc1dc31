"""Hostile names and files that must not forge output, train on garbage or leave the data folder (issue 12)."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_lung_unet.cli import main
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.settings import dataset_path
from napari_lung_unet.text import printable
from training.data import DatasetError, discover_pairs, read_pair


def test_a_newline_in_a_file_name_cannot_forge_a_summary_line(tmp_path: Path, tiny_model_dir: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bad\ndone 99, skipped 0, failed 0 to elsewhere\x1b[2K.png").write_bytes(b"not an image")
    assert main(["predict", str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir)]) == 1
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    (summary,) = [line for line in lines if line.startswith("done")]
    assert summary.startswith("done 0, skipped 0, failed 1 in ") and summary.endswith(" -> " + str(tmp_path / "out"))
    (failed,) = [line for line in lines if "FAILED " in line]
    assert "bad\\ndone 99, skipped 0, failed 0 to elsewhere\\x1b[2K.png" in failed and "\x1b" not in failed


def test_printable_keeps_ordinary_text() -> None:
    assert printable("Röntgen 肺 a b/c.png") == "Röntgen 肺 a b/c.png"
    assert printable("a\tb\r\n\udcff") == "a\\tb\\r\\n\\udcff"


def _dataset(root: Path, mask: np.ndarray | None = None) -> Path:
    image, labels = make_phantom((64, 48), seed=1, dtype=np.uint8)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    iio.imwrite(root / "images" / "c.png", image)
    iio.imwrite(root / "masks" / "c.png", ((labels > 0) * 255).astype(np.uint8) if mask is None else mask)
    return root


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda rng: rng.integers(0, 256, (64, 48), dtype=np.uint8), "mask values .* are not 0/1/2 labels or binary 0/255"),
        (lambda rng: rng.integers(0, 3, (64, 48, 3), dtype=np.uint8), "mask is colour"),
        (lambda rng: rng.integers(0, 65536, (64, 48), dtype=np.uint16), "mask values .* are not 0/1/2 labels"),
        (lambda rng: np.zeros((60, 48), np.uint8), "mask is 60×48 but its image is 64×48"),
    ],
)
def test_masks_that_are_not_label_images_are_refused_by_name(tmp_path: Path, make, message: str) -> None:
    (pair,) = discover_pairs(_dataset(tmp_path / "d", make(np.random.default_rng(0))))
    with pytest.raises(DatasetError, match=rf"masks/c\.png: {message}"):
        read_pair(pair)


@pytest.mark.parametrize("labels", ["binary255", "labels012", "rgb_grey", "bool"])
def test_real_mask_conventions_still_read(tmp_path: Path, labels: str) -> None:
    _, lab = make_phantom((64, 48), seed=1, dtype=np.uint8)
    mask = {"binary255": (lab > 0).astype(np.uint8) * 255, "labels012": lab,
            "rgb_grey": np.dstack([(lab > 0).astype(np.uint8) * 255] * 3), "bool": lab > 0}[labels]
    (pair,) = discover_pairs(_dataset(tmp_path / "d", mask))
    np.testing.assert_array_equal(read_pair(pair)[1], lab > 0)


@pytest.mark.parametrize("name", ["../../..", "/etc", "a/../../b", "", ".", "montgomery/../.."])
def test_card_dataset_names_cannot_leave_the_data_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a folder inside the data folder"):
        dataset_path(name, tmp_path)


def test_card_dataset_names_inside_the_data_folder(tmp_path: Path) -> None:
    assert dataset_path("montgomery", tmp_path) == tmp_path / "montgomery"
    assert dataset_path("site/a", tmp_path) == tmp_path / "site" / "a"
