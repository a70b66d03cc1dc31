"""The shipped default model on real X-rays: a guard against shipping broken weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.nn.predict import Predictor
from training.data import split_of_run
from training.evaluate import load_cases, score_cases


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def test_bundled_model_segments_the_shipped_sample() -> None:
    """Always, without the data: the model a fresh install runs finds each lung of the sample it ships."""
    from napari_lung_unet._sample_data import make_chest_phantom

    (image, _, _), (truth, _, _) = make_chest_phantom()
    loaded = Registry().load()
    assert loaded.card.status == "bundled"
    labels = Predictor(loaded, device="cpu").predict(image).labels
    for label in (1, 2):
        assert _dice(labels == label, truth == label) >= 0.9, label


def test_bundled_model_scores_what_its_card_claims_on_shenzhen(real_data: Path) -> None:
    """The card's Shenzhen validation Dice, re-measured on 10 of those cases: the card does not overstate it."""
    loaded = Registry().load()
    _, val = split_of_run(loaded.card, real_data / "shenzhen")
    sample = sorted(val, key=lambda p: p.case_id)[:10]
    assert len(sample) == 10
    dice = np.array([s.dice for s in score_cases(Predictor(loaded, device="cpu"), load_cases(sample))])
    claimed = loaded.card.metrics["validation"]["shenzhen"]["dice"]["mean"]
    assert dice.mean() >= claimed - 0.05, (claimed, dice.round(4))  # 10 cases: a sample's spread, not a drop


def test_default_model_dice_on_montgomery_validation_sample(real_data: Path) -> None:
    loaded = Registry().load()
    _, val = split_of_run(loaded.card, real_data / "montgomery")
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


def test_whole_lung_covers_the_lung_behind_the_heart_and_lung_fields_does_not(real_data: Path) -> None:
    """On covid_v7labs patients the bundled model never trained on (V7 drew them whole-lung): the true lung
    between the model's own lung fields (inside their convex hull: behind the heart, below the domes) is
    what the lung-fields proposal leaves out and the whole-lung proposal must cover."""
    from skimage.morphology import convex_hull_image

    loaded = Registry().load()
    assert loaded.card.conventions == ["lung-fields", "whole-lung"]
    fields_model = Predictor(loaded, device="cpu", convention="lung-fields")
    whole_model = fields_model.for_convention("whole-lung")
    _, val = split_of_run(loaded.card, real_data / "covid_v7labs")
    behind_total = truth_total = covered = 0
    gains = []
    for case in load_cases(sorted(val, key=lambda p: p.case_id)[:6]):
        truth = case.mask > 0
        fields = fields_model.predict(case.image).labels > 0
        whole = whole_model.predict(case.image).labels > 0
        behind = truth & ~fields & convex_hull_image(fields)
        behind_total, truth_total = behind_total + int(behind.sum()), truth_total + int(truth.sum())
        covered += int((whole & behind).sum())
        gains.append(_dice(whole, truth) - _dice(fields, truth))
    assert behind_total >= 0.08 * truth_total, "the lung-fields proposal should leave out the lung behind the heart"
    assert covered >= 0.6 * behind_total, (covered, behind_total)
    assert np.mean(gains) >= 0.02 and min(gains) > -0.01, np.round(gains, 4)
