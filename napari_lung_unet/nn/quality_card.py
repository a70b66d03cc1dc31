"""The stored form of an ``expected_dice`` estimator (a model card's ``quality`` field); the maths is in quality.py.

Kept apart from :mod:`.quality` so the card can hold it without importing post-processing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ConfigDict

FEATURE_NAMES = ("unsure", "area", "lungs_ratio", "whole_lung")
#: a mask below this is flagged for review (⚠, --flag-below's default): bench/quality_candidates.py measured it
FLAG_BELOW = 0.95


@dataclass
class QualityCalibration:
    """The fitted estimator, stored in the model card's ``quality`` field."""

    __pydantic_config__ = ConfigDict(strict=True, allow_inf_nan=False)

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    model_version: str  # the weights whose outputs it was fitted on (a fine-tune may keep its parent's)
    fitted_on: str = ""  # which cases, how validated
    flag_below: float = FLAG_BELOW
    metrics: dict[str, float] = field(default_factory=dict)  # cross-validated Spearman, MAE, catch rate

    def __post_init__(self) -> None:
        n = len(self.features)
        if not 0 < n <= len(FEATURE_NAMES) or not set(self.features) <= set(FEATURE_NAMES):
            raise ValueError(f"features: {self.features} must be some of {list(FEATURE_NAMES)}")
        if not len(self.mean) == len(self.scale) == len(self.coef) == n:
            raise ValueError(f"mean, scale and coef need one value per feature ({n})")
        if any(s <= 0 for s in self.scale):
            raise ValueError("scale: every value must be positive")
        if not 0 < self.flag_below < 1:
            raise ValueError(f"flag_below: {self.flag_below} must lie between 0 and 1")


def is_flagged(value: float | None, below: float = FLAG_BELOW) -> bool:
    """A mask to look at: its expected Dice is under ``below``. No estimate (not proposed yet): not flagged."""
    return value is not None and value < below


def review_order_key(value: float | None) -> tuple[int, float]:
    """Sort key for "least sure first": lowest expected Dice first, cases without an estimate last."""
    return (1, 0.0) if value is None else (0, float(value))
