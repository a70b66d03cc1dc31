"""Numeric options refused at the command line with their range (issue 21 #16), and a models/CURRENT that is a
folder repaired by ``lung-unet models --rollback`` (#17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_lung_unet.cli import main
from napari_lung_unet.nn.model_io import load_model
from napari_lung_unet.nn.registry import Registry


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["finetune", "--steps", "-5"], "argument --steps: must be an integer >= 1, got -5"),
        (["finetune", "--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got 0"),
        (["finetune", "--lr=-1e-3"], "argument --lr: must be a number >= 0, got -1e-3"),
        (["finetune", "--tolerance", "2"], "argument --tolerance: must be a number from 0 to 1, got 2"),
        (["finetune", "--replay-ratio", "nan"], "argument --replay-ratio: must be a number >= 0, got nan"),
        (["finetune", "--forgetting-budget", "inf"], "argument --forgetting-budget: must be a number >= 0, got inf"),
        (["train", "--data", "d", "--output", "o", "--epochs", "0"], "argument --epochs: must be an integer >= 1, got 0"),
        (["train", "--data", "d", "--output", "o", "--lr", "0"], "argument --lr: must be a number > 0, got 0"),
        (["train", "--data", "d", "--output", "o", "--val-fraction", "1"], "argument --val-fraction: must be a number above 0 below 1, got 1"),
        (["train", "--data", "d", "--output", "o", "--depth", "12"], "argument --depth: must be an integer from 1 to 8, got 12"),
        (["train", "--data", "d", "--output", "o", "--workers", "-2"], "argument --workers: must be an integer >= -1, got -2"),
        (["train", "--data", "d", "--output", "o", "--hflip", "1.5"], "argument --hflip: must be a number from 0 to 1, got 1.5"),
        (["train", "--data", "d", "--output", "o", "--repeat", "whole-lung=0"], "argument --repeat: must be an integer >= 1, got 0"),
        (["train", "--data", "d", "--output", "o", "--repeat", "whole=2"],
         "argument --repeat: unknown lung convention 'whole'; choose lung-fields or whole-lung"),
        (["train", "--data", "d", "--output", "o", "--repeat", "whole-lung"], "argument --repeat: expected CONVENTION=K, got 'whole-lung'"),
        (["finetune", "--crop", "-1"], "argument --crop: must be an integer >= 0, got -1"),
        (["predict", "x", "-o", "y", "--workers", "0"], "argument --workers: must be an integer >= 1, got 0"),
        (["predict", "x", "-o", "y", "--batch-size", "two"], "argument --batch-size: must be an integer >= 1, got 'two'"),
    ],
)
def test_a_numeric_option_out_of_range_is_a_usage_error_naming_the_range(
    argv: list[str], message: str, capsys: pytest.CaptureFixture, isolated_home: Path,
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"error: {message}")
    assert not (isolated_home / "models").exists()  # stopped before anything ran: no rejected version made


def test_rollback_repairs_a_current_pointer_that_is_a_folder(
    tiny_model_dir: Path, isolated_home: Path, capsys: pytest.CaptureFixture,
) -> None:
    loaded = load_model(tiny_model_dir)
    Registry().add(loaded.model, loaded.card)
    pointer = isolated_home / "models" / "CURRENT"
    pointer.mkdir()
    (pointer / "note.txt").write_text("someone's file")
    assert main(["models"]) == 1  # the damage is reported, with the repair
    assert "repair it with `lung-unet models --rollback VERSION`" in capsys.readouterr().err

    assert main(["models", "--rollback", "tiny"]) == 0
    assert capsys.readouterr().out.strip() == "current model: (damaged pointer) -> tiny"
    assert Registry().current_version() == "tiny"
    assert (isolated_home / "models" / "CURRENT.damaged" / "note.txt").read_text() == "someone's file"  # kept, not deleted
