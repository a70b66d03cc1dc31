"""Fine-tuning with the promotion gate, on phantoms with a real tiny U-Net."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from napari_lung_unet.card import ModelCard
from napari_lung_unet.corrections import CorrectionRecord, CorrectionsStore
from napari_lung_unet.model import UNet
from napari_lung_unet.phantom import make_phantom
from napari_lung_unet.registry import Registry
from training.data import DatasetError, Pair
from training.finetune import FinetuneCancelled, FinetuneConfig, fair_subset, finetune, gate

from napari_lung_unet.model import UNetConfig

TINY = UNetConfig(base_channels=4, depth=2)


@pytest.fixture
def base_registry(isolated_home: Path) -> Registry:
    registry = Registry()
    torch.manual_seed(0)
    registry.add(UNet(TINY), ModelCard(version="base", architecture=TINY, input_size=64, status="trained"))
    registry.set_current("base")
    return registry


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A corrections store as the widget writes it: 8 accepted phantom cases."""
    s = CorrectionsStore(tmp_path / "corrections")
    for i in range(8):
        image, labels = make_phantom((96, 96), seed=30 + i)
        s.add(image, labels, CorrectionRecord(f"case{i}", f"/x/case{i}.png", "0" * 64, "base", 0.1))
    return s.root


def _cfg(store: Path, **kw) -> FinetuneConfig:
    base = dict(corrections=str(store), steps=40, batch_size=4, lr=3e-3, replay=[], device="cpu")
    base.update(kw)
    return FinetuneConfig(**base)


def test_good_candidate_is_promoted(base_registry: Registry, store: Path) -> None:
    events: list[dict] = []
    result = finetune(_cfg(store), progress=events.append)
    assert result.promoted, result.reason
    assert result.after["holdout_dice"] > result.before["holdout_dice"]
    assert base_registry.current_version() == result.version
    card = base_registry.card(result.version)
    assert card.parent == "base" and card.status == "promoted"
    assert card.metrics["after"]["holdout_dice"] == pytest.approx(result.after["holdout_dice"])
    train_events = [e for e in events if e["stage"] == "train"]
    assert len(train_events) == 40 and "eta_s" in train_events[0]


def test_worse_candidate_is_rejected_and_current_stays(base_registry: Registry, store: Path) -> None:
    # first make a decent parent, then wreck it with an absurd learning rate
    good = finetune(_cfg(store, steps=60))
    assert good.promoted
    bad = finetune(_cfg(store, lr=50.0, steps=5))
    assert not bad.promoted
    assert base_registry.current_version() == good.version
    card = base_registry.card(bad.version)
    assert card.status == "rejected" and "Dice" in card.notes


def test_gate_rules() -> None:
    assert not gate({"holdout_dice": 0.9}, {"holdout_dice": 0.9}, 0.01)[0]
    assert gate({"holdout_dice": 0.9, "base_val_dice": 0.97}, {"holdout_dice": 0.95, "base_val_dice": 0.966}, 0.005)[0]
    ok, reason = gate({"holdout_dice": 0.9, "base_val_dice": 0.97}, {"holdout_dice": 0.95, "base_val_dice": 0.96}, 0.005)
    assert not ok and "base validation" in reason


def test_gate_rejects_a_loss_on_one_dataset_that_the_mixed_mean_hides() -> None:
    before = {"holdout_dice": 0.85, "base_val_dice": 0.960, "montgomery_val_dice": 0.975, "shenzhen_val_dice": 0.957}
    after = {"holdout_dice": 0.89, "base_val_dice": 0.958, "montgomery_val_dice": 0.962, "shenzhen_val_dice": 0.957}
    both = ("montgomery", "shenzhen")
    ok, reason = gate(before, after, tolerance=0.005, dataset_tolerance=0.01, datasets=both)
    assert not ok and reason.startswith("montgomery validation Dice dropped 0.9750 -> 0.9620")
    assert gate(before, {**after, "montgomery_val_dice": 0.968}, tolerance=0.005, dataset_tolerance=0.01, datasets=both)[0]


def test_gate_subset_keeps_every_case_of_a_small_dataset() -> None:
    pairs = [Pair(f"m{i}", Path(f"m{i}.png"), (Path(f"m{i}_mask.png"),), "montgomery") for i in range(12)]
    pairs += [Pair(f"s{i}", Path(f"s{i}.png"), (Path(f"s{i}_mask.png"),), "shenzhen") for i in range(65)]
    kept = fair_subset(pairs, 48)
    assert len(kept) == 48
    assert [p.case_id for p in kept if p.dataset == "montgomery"] == [f"m{i}" for i in range(12)]
    assert len({p.case_id for p in kept}) == 48  # the 36 Shenzhen cases are distinct
    assert fair_subset(pairs[:5], 48) == pairs[:5]


def test_replay_base_data_is_used_and_scored(base_registry: Registry, store: Path, phantom_dataset: Path) -> None:
    result = finetune(_cfg(store, replay=[str(phantom_dataset)], steps=10))
    assert "base_val_dice" in result.before and "base_val_dice" in result.after
    assert base_registry.card(result.version).extra["finetune"]["replay_images"] > 0


def test_cancel_registers_nothing(base_registry: Registry, store: Path) -> None:
    calls = iter(range(1000))
    with pytest.raises(FinetuneCancelled):
        finetune(_cfg(store), should_stop=lambda: next(calls) >= 5)
    assert [c.version for c in base_registry.cards()] == [base_registry.bundled_version, "base"]
    assert base_registry.current_version() == "base"


def test_no_corrections_gives_clear_error(base_registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no corrections"):
        finetune(_cfg(tmp_path / "nothing"))


def test_flat_folder_as_corrections(base_registry: Registry, phantom_dataset: Path) -> None:
    result = finetune(_cfg(phantom_dataset, steps=5))
    assert result.n_train + result.n_holdout == 6


def test_killed_finetune_leaves_registry_loadable(base_registry: Registry, store: Path, isolated_home: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal
        from training.finetune import FinetuneConfig, finetune
        def progress(event):
            if event["stage"] == "train" and event["step"] == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        finetune(FinetuneConfig(corrections={str(store)!r}, steps=40, batch_size=4, replay=[], device="cpu"), progress)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**__import__("os").environ, "LUNG_UNET_HOME": str(isolated_home)}, timeout=300)
    assert proc.returncode == -9
    # a half-built version folder from an earlier crash must be ignored too
    (base_registry.models_dir / ".ft-crashed.abc").mkdir()
    (base_registry.models_dir / ".ft-crashed.abc" / "weights.safetensors").write_bytes(b"\x00" * 10)
    fresh = Registry()
    assert fresh.current_version() == "base"
    assert fresh.load().card.version == "base"
    assert [c.version for c in fresh.cards()] == [fresh.bundled_version, "base"]
