"""The refiner's training run (issue 30) is resumable: stopped and resumed, it reaches the same state as one
uninterrupted run, on the same schedule; a real tiny parent and phantom cases, in-process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.nn.model import UNet, UNetConfig
from napari_lung_unet.nn.model_io import load_model, save_model
from training.refiner_train import CHECKPOINT_NAME, main

sys.path.insert(0, str(Path(__file__).parent))
from phantom_models import phantom_folder  # noqa: E402


@pytest.fixture
def run_args(tmp_path: Path) -> list[str]:
    torch.manual_seed(0)
    config = UNetConfig(base_channels=4, depth=2)
    parent = save_model(tmp_path / "parent", UNet(config), ModelCard(version="tiny", architecture=config, input_size=64))
    data = phantom_folder(tmp_path / "cases", 6, seed=300)
    return ["--data", str(data), "--parent", str(parent), "--steps", "4", "--batch-size", "2", "--eval-every", "2",
            "--checkpoint-every", "2", "--max-clicks", "3", "--self-share", "0.5", "--cache", str(tmp_path / "prepared.pt")]


def test_stopped_and_resumed_run_ends_as_an_uninterrupted_one(run_args: list[str], tmp_path: Path) -> None:
    whole = main([*run_args, "--output", str(tmp_path / "whole")])
    main([*run_args, "--output", str(tmp_path / "parts"), "--stop-at", "2"])
    stopped = torch.load(tmp_path / "parts" / CHECKPOINT_NAME, weights_only=True)
    assert stopped["step"] == 2
    parts = main([*run_args, "--output", str(tmp_path / "parts"), "--resume"])
    a = torch.load(whole / CHECKPOINT_NAME, weights_only=True)
    b = torch.load(parts / CHECKPOINT_NAME, weights_only=True)
    assert a["step"] == b["step"] == 4
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), f"{name} differs after resuming"
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"], "the schedule moved"
    assert [{k: v for k, v in h.items() if k != "hours"} for h in a["history"]] == \
        [{k: v for k, v in h.items() if k != "hours"} for h in b["history"]]
    assert [h["step"] for h in b["history"]] == [0, 2, 4]
    refiner = load_model(parts)  # the folder is a refiner the dock and the benches load
    assert refiner.card.extra["window"] == "side" and refiner.card.architecture.in_channels == 4


def test_resume_without_a_checkpoint_says_so(run_args: list[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no checkpoint at"):
        main([*run_args, "--output", str(tmp_path / "none"), "--resume"])
    assert not (tmp_path / "none").exists()
