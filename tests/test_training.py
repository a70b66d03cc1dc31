"""Training on phantoms with real tiny U-Nets: loss goes down, resume, CSV log, bad datasets."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from napari_lung_unet.nn.model_io import load_model
from training.data import DatasetError, discover_pairs
from training.metrics import METRIC_NAMES
from training.trainer import LAST_CHECKPOINT, TrainConfig, train


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=[str(data)], output=str(out), base_channels=4, depth=2, input_size=64, epochs=2,
                batch_size=2, lr=3e-3, val_fraction=0.34, show_progress=False, workers=0, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_training_lowers_loss_and_logs_seed_metrics(phantom_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    best = train(_cfg(phantom_dataset, out, epochs=4))
    with open(out / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    for name in METRIC_NAMES:
        assert name in rows[0] and f"val_{name}" in rows[0]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    loaded = load_model(best)
    assert loaded.card.architecture.base_channels == 4
    assert (out / "curves.png").stat().st_size > 1000
    assert (out / "split.json").is_file()


def test_resume_continues_epochs_and_optimiser_state(phantom_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_cfg(phantom_dataset, out, epochs=2))
    first = torch.load(out / LAST_CHECKPOINT, weights_only=True)
    assert first["epoch"] == 2
    train(_cfg(phantom_dataset, out, epochs=3))
    second = torch.load(out / LAST_CHECKPOINT, weights_only=True)
    assert second["epoch"] == 3
    # Adam's step counter carries over rather than restarting
    steps_first = next(iter(first["optimizer"]["state"].values()))["step"]
    steps_second = next(iter(second["optimizer"]["state"].values()))["step"]
    assert steps_second > steps_first
    with open(out / "log.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2, 3]


def test_missing_mask_is_named(phantom_dataset: Path) -> None:
    (phantom_dataset / "masks" / "case2.png").unlink()
    with pytest.raises(DatasetError, match="case2"):
        discover_pairs(phantom_dataset)


def test_size_mismatch_is_named(phantom_dataset: Path, tmp_path: Path) -> None:
    iio.imwrite(phantom_dataset / "masks" / "case1.png", np.zeros((50, 60), np.uint8))
    with pytest.raises(DatasetError, match=r"case1\.png.*50×60"):
        train(_cfg(phantom_dataset, tmp_path / "run"))


def test_empty_and_unknown_folders(tmp_path: Path) -> None:
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        discover_pairs(tmp_path / "empty")
    with pytest.raises(DatasetError, match="not a dataset"):
        discover_pairs(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        discover_pairs(tmp_path / "nope")


def test_seed_montgomery_layout_sums_left_and_right(tmp_path: Path) -> None:
    from napari_lung_unet.images.phantom import make_phantom
    from training.data import read_pair

    root = tmp_path / "MontgomerySet"
    for sub in ("CXR_png", "ManualMask/leftMask", "ManualMask/rightMask"):
        (root / sub).mkdir(parents=True)
    image, labels = make_phantom((96, 96), seed=1)
    iio.imwrite(root / "CXR_png" / "MCUCXR_0001_0.png", image)
    iio.imwrite(root / "ManualMask" / "rightMask" / "MCUCXR_0001_0.png", ((labels == 1) * 255).astype(np.uint8))
    iio.imwrite(root / "ManualMask" / "leftMask" / "MCUCXR_0001_0.png", ((labels == 2) * 255).astype(np.uint8))
    (pair,) = discover_pairs(root)
    _, mask = read_pair(pair)
    assert np.array_equal(mask, labels > 0)


def test_init_from_starts_from_given_weights(phantom_dataset: Path, tmp_path: Path) -> None:
    first = train(_cfg(phantom_dataset, tmp_path / "stage1", epochs=1))
    start = load_model(first).model.state_dict()
    cfg = _cfg(phantom_dataset, tmp_path / "stage2", epochs=1, lr=0.0, init_from=str(first))
    second = load_model(train(cfg)).model.state_dict()
    # lr 0: the weights stay those of stage 1 (BatchNorm running stats still update)
    assert torch.equal(second["head.weight"], start["head.weight"])


def test_init_from_a_lower_resolution_run_and_not_from_another_architecture(phantom_dataset: Path, tmp_path: Path) -> None:
    first = train(_cfg(phantom_dataset, tmp_path / "stage1", epochs=1))
    # progressive resizing: the fully convolutional U-Net continues at a higher input size
    bigger = load_model(train(_cfg(phantom_dataset, tmp_path / "stage2", epochs=1, input_size=96, init_from=str(first))))
    assert bigger.card.input_size == 96
    with pytest.raises(ValueError, match="architecture differs"):
        train(_cfg(phantom_dataset, tmp_path / "other", epochs=1, base_channels=8, init_from=str(first)))


def test_resume_puts_optimizer_state_on_the_training_device(phantom_dataset: Path, tmp_path: Path) -> None:
    """Resume on CUDA failed at its first step ("found at least two devices"): Adam's moments stayed
    on the CPU while the model moved. The meta device stands in for a GPU on a CPU-only machine:
    every tensor of the restored state must follow the parameters, wherever they are."""
    from training.trainer import Trainer

    out = tmp_path / "run"
    train(_cfg(phantom_dataset, out, epochs=1))
    trainer = Trainer(_cfg(phantom_dataset, out, epochs=2))
    trainer.device = torch.device("meta")
    model, opt, _, run = trainer._build_model()
    assert run.epoch == 1
    assert {p.device.type for p in model.parameters()} == {"meta"}
    moments = [v for s in opt.state.values() for k, v in s.items() if k != "step"]
    assert moments and {t.device.type for t in moments} == {"meta"}


def test_a_checkpoint_that_needs_pickle_is_refused_by_name(phantom_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / LAST_CHECKPOINT).write_bytes(pickle.dumps({"epoch": print}))
    with pytest.raises(ValueError, match=r"last\.ckpt.*--no-resume") as err:
        train(_cfg(phantom_dataset, out, epochs=1))
    assert "weights_only" not in str(err.value)
