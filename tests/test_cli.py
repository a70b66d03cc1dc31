"""``lung-unet`` end to end: real files in, real masks out, one line per bad file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch

from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.cli.dispatch import SUBCOMMANDS, build_parser, main
from napari_lung_unet.nn.model import UNet, UNetConfig
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.nn.registry import Registry

GOOD_SHAPES = {"case_a": (300, 260), "case_b": (257, 391)}


@pytest.fixture
def good_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "xrays"
    folder.mkdir()
    for i, (stem, shape) in enumerate(GOOD_SHAPES.items()):
        image, _ = make_phantom(shape, seed=i)
        iio.imwrite(folder / f"{stem}.png", image)
    return folder


@pytest.fixture
def mixed_folder(good_folder: Path) -> Path:
    (good_folder / "corrupt.png").write_bytes(np.random.default_rng(0).bytes(3000))
    tifffile.imwrite(
        good_folder / "stack.tif", np.random.default_rng(1).random((3, 64, 64)).astype(np.float32), photometric="minisblack"
    )
    (good_folder / "README.txt").write_text("not an image, and not picked up from a folder")
    return good_folder


def _check_masks(out: Path) -> None:
    for stem, shape in GOOD_SHAPES.items():
        labels = iio.imread(out / f"{stem}.png")
        assert labels.shape == shape and labels.dtype == np.uint8
        assert set(np.unique(labels).tolist()) <= {0, 1, 2}


def _failed_lines(stderr: str) -> list[str]:
    # the progress bar redraws with \r; FAILED lines are printed through it on their own line
    return [line.split("FAILED ", 1)[1] for line in stderr.replace("\r", "\n").splitlines() if "FAILED " in line]


def test_predict_mixed_folder(mixed_folder: Path, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "masks"
    code = main(["predict", str(mixed_folder), "--output", str(out), "--model", str(tiny_model_dir)])
    err = capsys.readouterr().err
    assert code == 1
    _check_masks(out)
    assert sorted(p.name for p in out.iterdir()) == ["case_a.png", "case_b.png", "results.csv"]  # nothing for bad files, no temp files
    failed = _failed_lines(err)
    assert len(failed) == 2, err
    assert any(line.startswith(f"{mixed_folder / 'corrupt.png'}: not a readable image") for line in failed), failed
    assert any(line.startswith(f"{mixed_folder / 'stack.tif'}: got a 3-D stack") and "axis 0" in line for line in failed)
    assert "Traceback" not in err
    assert ", failed 2 in " in err


def test_predict_all_good_exits_zero(good_folder: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "masks"
    files = [str(p) for p in sorted(good_folder.iterdir())]
    assert main(["predict", *files, "-o", str(out), "--model", str(tiny_model_dir), "--batch-size", "1"]) == 0
    _check_masks(out)


def test_predict_overlay(good_folder: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "masks"
    assert main(["predict", str(good_folder), "--output", str(out), "--model", str(tiny_model_dir), "--overlay"]) == 0
    _check_masks(out)
    for stem, shape in GOOD_SHAPES.items():
        overlay = iio.imread(out / f"{stem}_overlay.png")
        assert overlay.shape == (*shape, 3) and overlay.dtype == np.uint8


def test_debug_shows_tracebacks(mixed_folder: Path, tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["predict", str(mixed_folder / "corrupt.png"), "-o", str(tmp_path / "m"), "--model", str(tiny_model_dir)]
    assert main([*args, "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
    assert main(["--debug", *args]) == 1  # the global flag works as well
    assert "Traceback" in capsys.readouterr().err


def test_same_stem_does_not_overwrite(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    first, second = tmp_path / "x" / "scan.png", tmp_path / "y" / "scan.png"
    for path, shape in ((first, (100, 90)), (second, (120, 140))):
        path.parent.mkdir()
        iio.imwrite(path, make_phantom(shape, seed=shape[0])[0])
    third = tmp_path / "y" / "scan.tif"
    tifffile.imwrite(third, make_phantom((64, 80), seed=2)[0])
    out = tmp_path / "masks"
    assert main(["predict", str(first), str(second), str(third), "-o", str(out), "--model", str(tiny_model_dir)]) == 0
    shapes = {p.name: iio.imread(p).shape for p in out.glob("*.png")}
    assert shapes == {"scan.png": (100, 90), "scan-2.png": (120, 140), "scan-3.png": (64, 80)}
    assert capsys.readouterr().err.count("note:") == 2


@pytest.mark.parametrize("inside", ["", "masks"])
def test_output_into_the_input_folder_is_refused_and_nothing_is_written(
    good_folder: Path, tiny_model_dir: Path, inside: str, capsys: pytest.CaptureFixture,
) -> None:
    """Issue 21 #9: masks written into an input folder were segmented as X-rays by the next run."""
    before = {p.name: p.read_bytes() for p in good_folder.iterdir()}
    output = good_folder / inside if inside else good_folder
    assert main(["predict", str(good_folder), "-o", str(output), "--model", str(tiny_model_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: -o {output} is") and "choose an output folder outside the inputs" in err
    assert {p.name: p.read_bytes() for p in good_folder.iterdir()} == before


def test_expected_errors_are_one_line(tmp_path: Path, good_folder: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(empty), "-o", str(tmp_path / "m")]) == 1
    assert capsys.readouterr().err.strip() == f"error: no images found in {empty}"

    assert main(["predict", str(good_folder), "-o", str(tmp_path / "m"), "--model", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: 'nope' is neither a registered model version") and "\n" not in err
    assert not (tmp_path / "m").exists()  # nothing is written before the model loads

    assert main(["predict", str(good_folder), "-o", str(tmp_path / "m"), "--device", "tpu"]) == 1
    assert "unknown device 'tpu'" in capsys.readouterr().err


def test_bad_batch_size_is_a_usage_error(good_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["predict", str(good_folder), "-o", str(tmp_path), "--batch-size", "0"])
    assert info.value.code == 2


@pytest.mark.parametrize("command", [[], *[[name] for name in SUBCOMMANDS]], ids=lambda c: c[0] if c else "top")
def test_help(command: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: lung-unet" in capsys.readouterr().out


def test_every_subcommand_is_registered() -> None:
    # imported statically: a missing module fails the import of napari_lung_unet.cli.dispatch, not this list
    assert set(SUBCOMMANDS) == {"predict", "models", "train", "finetune", "evaluate", "export"}
    choices = build_parser()._subparsers._group_actions[0].choices
    assert set(choices) == set(SUBCOMMANDS)


def test_models_lists_marks_current_and_rolls_back(capsys: pytest.CaptureFixture) -> None:
    registry = Registry()
    bundled = registry.bundled_version
    cfg = UNetConfig(base_channels=4, depth=2)
    torch.manual_seed(0)
    metrics = {"validation_at_input_size": {"val_dice": 0.9512, "val_iou": 0.9071, "val_loss": 0.1}, "epoch": 7}
    registry.add(UNet(cfg), ModelCard(version="ft-1", architecture=cfg, parent=bundled, metrics=metrics, status="trained"))
    registry.set_current("ft-1")

    assert main(["models"]) == 0
    rows = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(rows) == {bundled, "ft-1"}
    assert rows["ft-1"].startswith("*") and not rows[bundled].startswith("*")
    assert "trained" in rows["ft-1"] and bundled in rows["ft-1"]  # status and parent
    assert "val_dice=0.951" in rows["ft-1"] and "val_iou=0.907" in rows["ft-1"] and "loss" not in rows["ft-1"]

    assert main(["models", "--rollback", bundled]) == 0
    assert capsys.readouterr().out.strip() == f"current model: ft-1 -> {bundled}"
    assert Registry().current_version() == bundled

    assert main(["models", "--rollback", "ft-0"]) == 1
    assert "error: unknown model version 'ft-0'" in capsys.readouterr().err


def test_console_script_end_to_end(mixed_folder: Path, tmp_path: Path) -> None:
    # the installed `lung-unet` entry point, with the registry's current (bundled) model
    exe = Path(sys.executable).with_name("lung-unet")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "napari_lung_unet.cli"]
    out = tmp_path / "masks"
    result = subprocess.run(
        [*command, "predict", str(mixed_folder), "--output", str(out), "--overlay"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )
    assert result.returncode == 1, result.stderr
    _check_masks(out)
    assert sorted(p.name for p in out.iterdir()) == ["case_a.png", "case_a_overlay.png", "case_b.png", "case_b_overlay.png", "results.csv"]
    assert len(_failed_lines(result.stderr)) == 2
    assert "Traceback" not in result.stderr
