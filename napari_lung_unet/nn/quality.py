"""How good a mask expects to be: ``expected_dice`` from the network's own probability, and where it is unsure.

The estimate is a small regression on features of the probability the network already made (no
extra network pass, a few milliseconds at the network's size), fitted on the bundled model's
validation split against the true Dice of each case in its own convention. It reads as a Dice:

    log(1 − expected_dice) = intercept + Σ coef_k · (feature_k − mean_k) / scale_k

Features (``quality_features``), each measured on the cleaned mask at the network's size:

- ``unsure``: Σ min(p, 1 − p) over the image per mask pixel, the mass of doubt (its log);
- ``area``: the mask's share of the image (its log): small lungs lose more Dice per wrong pixel;
- ``lungs_ratio``: the smaller lung's area over the larger's (its log): a lung the model half missed;
- ``whole_lung``: 1 for the whole-lung convention, whose masks are harder to agree on (a lower Dice).

Which features, and why not others (flip agreement, the other convention's disagreement, shape
plausibility, an atlas RCA against the shipped reference set), is measured by
``bench/quality_candidates.py`` and recorded in ``docs/benchmarks.md``. A card without a calibration
(tiny test models, cards older than this) gets the uncalibrated soft self-Dice: the Dice the mask
would have if the network's probabilities were right.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..images.conventions import WHOLE_LUNG
from ..images.labels import LEFT_LUNG, RIGHT_LUNG
from .postprocess import clean_mask
from .quality_card import FEATURE_NAMES, FLAG_BELOW, QualityCalibration, is_flagged, review_order_key

__all__ = ["FEATURE_NAMES", "FLAG_BELOW", "QualityCalibration", "expected_dice", "is_flagged", "region_hint", "review_order_key"]
_LOGGED = {"unsure", "area", "lungs_ratio"}  # features the model sees as log(x + LOG_FLOOR)
LOG_FLOOR = 1e-4


def quality_features(prob: np.ndarray, convention: str, threshold: float = 0.5) -> dict[str, float]:
    """The estimator's inputs from a probability map at the network's size (see the module docstring)."""
    p = np.asarray(prob, dtype=np.float32)
    labels = clean_mask(p > threshold)
    area = int(np.count_nonzero(labels))
    right, left = int(np.count_nonzero(labels == RIGHT_LUNG)), int(np.count_nonzero(labels == LEFT_LUNG))
    return {
        "unsure": float(np.minimum(p, 1.0 - p).sum() / max(area, 1)),
        "area": area / p.size,
        "lungs_ratio": min(right, left) / max(right, left, 1),
        "whole_lung": float(convention == WHOLE_LUNG),
        "self_dice": _soft_self_dice(p, labels > 0),
    }


def _soft_self_dice(p: np.ndarray, mask: np.ndarray) -> float:
    denominator = float(p.sum()) + float(mask.sum())
    return 2.0 * float(p[mask].sum()) / denominator if denominator else 0.0


def feature_vector(values: dict[str, float], names: list[str] | tuple[str, ...]) -> np.ndarray:
    """The features as the regression sees them (logs where the docstring says so)."""
    return np.array([np.log(values[n] + LOG_FLOOR) if n in _LOGGED else values[n] for n in names], dtype=np.float64)


def estimate(values: dict[str, float], calibration: QualityCalibration | None) -> float:
    """expected_dice from features; uncalibrated (no card calibration): the soft self-Dice."""
    if calibration is None:
        return float(np.clip(values["self_dice"], 0.0, 1.0))
    z = (feature_vector(values, calibration.features) - np.array(calibration.mean)) / np.array(calibration.scale)
    return float(np.clip(1.0 - np.exp(calibration.intercept + z @ np.array(calibration.coef)), 0.0, 1.0))


def expected_dice(prob: np.ndarray, convention: str, calibration: QualityCalibration | None, threshold: float = 0.5) -> float:
    """The Dice this mask expects against a clinician's mask in ``convention`` (0–1)."""
    return estimate(quality_features(prob, convention, threshold), calibration)


# -- where the model is unsure --------------------------------------------------------------------

HINT_LEVEL = 0.2  # a pixel is unsure where min(p, 1 − p) exceeds this (p between 0.2 and 0.8)
_ROWS = ("upper", "middle", "lower")
_SIDES = {RIGHT_LUNG: "right", LEFT_LUNG: "left"}


def region_hint(prob: np.ndarray, labels: np.ndarray) -> tuple[str, np.ndarray]:
    """Where to check: a phrase ("the lower left lung") and a boolean mask of the unsure region, both at
    ``labels``' size. ``prob`` may be at the network's size (it is resized here). The region is the
    largest connected patch of unsure pixels; its place is named by the lung it touches most (1 = the
    patient's right, 2 = left, as in :mod:`napari_lung_unet.images.labels`) and by which third of that
    lung's height holds its centre. No unsure patch: ("", an empty mask)."""
    labels = np.asarray(labels)
    p = _at_shape(np.asarray(prob, dtype=np.float32), labels.shape)
    unsure = np.minimum(p, 1.0 - p) > HINT_LEVEL
    patches, n = ndimage.label(unsure)
    if n == 0:
        return "", np.zeros(labels.shape, bool)
    sizes = np.bincount(patches.ravel())[1:]
    hint = patches == int(np.argmax(sizes)) + 1
    return name_place(hint, labels), hint


def _at_shape(p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if p.shape == tuple(shape):
        return p
    from .preprocess import resize

    return resize(p, (int(shape[0]), int(shape[1]))).numpy()


def name_place(hint: np.ndarray, labels: np.ndarray) -> str:
    """"the lower left lung": the lung ``hint`` (a boolean patch) lies in or next to, and the third of its height."""
    # the lung the patch lies in or next to: grow the patch until it meets a lung
    grown, touched = hint, labels[hint]
    for _ in range(8):
        if np.any(touched > 0):
            break
        grown = ndimage.binary_dilation(grown, iterations=4)
        touched = labels[grown]
    counts = {k: int(np.count_nonzero(touched == k)) for k in _SIDES}
    if not any(counts.values()):
        return "the area outside the lungs"
    lung = max(counts, key=lambda k: counts[k])
    rows = np.nonzero(np.any(labels == lung, axis=1))[0]
    centre = float(np.nonzero(hint)[0].mean())
    third = int(np.clip((centre - rows[0]) / max(rows[-1] - rows[0] + 1, 1) * 3, 0, 2))
    return f"the {_ROWS[third]} {_SIDES[lung]} lung"


def hint_text(value: float | None, place: str, below: float = FLAG_BELOW) -> str:
    """The dock's line, e.g. "expected Dice 0.93 — check the lower left lung" (the place only when flagged)."""
    if value is None:
        return ""
    return f"expected Dice {value:.2f}" + (f" — check {place}" if place and is_flagged(value, below) else "")
