"""The shipped default model on real X-rays: a guard against shipping broken weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.nn.predict import Predictor
from training.data import discover_pairs, stable_split
from training.evaluate import load_cases, score_cases


def test_bundled_model_is_trained_and_documented() -> None:
    card = Registry().load().card
    assert card.status == "bundled"
    assert {"montgomery", "shenzhen"} <= set(card.training_data)
    assert card.metrics["validation"]["montgomery"]["dice"]["mean"] > 0.95


def test_default_model_dice_on_montgomery_validation_sample(real_data: Path) -> None:
    loaded = Registry().load()
    tc = loaded.card.extra["train_config"]
    _, val = stable_split(discover_pairs(real_data / "montgomery"), tc["val_fraction"], tc["seed"])
    sample = sorted(val, key=lambda p: p.case_id)[:10]
    assert len(sample) == 10
    scores = score_cases(Predictor(loaded, device="cpu"), load_cases(sample))
    dice = np.array([s.dice for s in scores])
    assert dice.mean() >= 0.95, dict(zip([s.case_id for s in scores], dice.round(4)))
    assert dice.min() > 0.8


def test_default_model_labels_right_and_left_on_a_real_xray(real_data: Path) -> None:
    from napari_lung_unet.images.read import read_xray

    image = sorted((real_data / "montgomery" / "images").glob("*.png"))[0]
    labels = Predictor.from_registry(device="cpu").predict(read_xray(image)).labels
    cols = np.nonzero(labels)[1]
    right_cols, left_cols = np.nonzero(labels == 1)[1], np.nonzero(labels == 2)[1]
    assert len(cols) and right_cols.mean() < left_cols.mean()  # patient's right is on the image's left
