"""Fit and judge an ``expected_dice`` estimator: ridge regression of log(1 − Dice) on a few features.

Judged the way a user meets it: Spearman against the true Dice, mean absolute error, and the catch
rate, the share of masks whose true Dice is below 0.95 that fall among the lowest 20 % of the estimate
(the ones a reviewer with time for a fifth of a batch would look at). Cross-validation is leave-one-out:
each case's estimate comes from a fit that never saw it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import stats

from napari_lung_unet.nn.quality import QualityCalibration

BAD_BELOW = 0.95  # a mask that needs a look: what the catch rate counts
LOWEST_SHARE = 0.2  # the share of a batch a reviewer looks at
RIDGE = 1.0  # on standardised features; 97 cases, four features: enough to keep one outlier from steering


def _solve(x: np.ndarray, dice: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardisation and weights (intercept first) of the ridge fit of log(1 − Dice) on ``x``."""
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.column_stack([np.ones(len(x)), (x - mean) / scale])
    penalty = ridge * np.diag([0.0] + [1.0] * x.shape[1])  # the intercept is not shrunk
    return mean, scale, np.linalg.solve(z.T @ z + penalty, z.T @ _log_error(dice))


def _apply(mean: np.ndarray, scale: np.ndarray, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - np.exp(w[0] + ((x - mean) / scale) @ w[1:]), 0.0, 1.0)


def fit(x: np.ndarray, dice: np.ndarray, names: list[str], model_version: str, ridge: float = RIDGE,
        fitted_on: str = "") -> QualityCalibration:
    """The product's estimator fitted on all rows of ``x`` (cases × features, as ``feature_vector`` makes them)."""
    mean, scale, w = _solve(x, dice, ridge)
    return QualityCalibration(
        features=list(names), mean=mean.tolist(), scale=scale.tolist(), coef=w[1:].tolist(), intercept=float(w[0]),
        model_version=model_version, fitted_on=fitted_on,
    )


def predict(calibration: QualityCalibration, x: np.ndarray) -> np.ndarray:
    w = np.array([calibration.intercept, *calibration.coef])
    return _apply(np.array(calibration.mean), np.array(calibration.scale), w, x)


def _log_error(dice: np.ndarray) -> np.ndarray:
    return np.log(np.clip(1.0 - dice, 1e-4, None))


def with_intercept_from(calibration: QualityCalibration, x: np.ndarray, dice: np.ndarray) -> QualityCalibration:
    """The same slopes, the intercept re-fitted on (x, dice): slopes learnt on many training cases, the level
    on held-out ones (the network is better on its training cases, so their Dice alone would read optimistic)."""
    z = (x - np.array(calibration.mean)) / np.array(calibration.scale)
    shift = float(np.mean(_log_error(dice) - (calibration.intercept + z @ np.array(calibration.coef))))
    return replace(calibration, intercept=calibration.intercept + shift)


def leave_one_out_intercept(calibration: QualityCalibration, x: np.ndarray, dice: np.ndarray) -> np.ndarray:
    """Each held-out case's estimate with the intercept re-fitted on all the other held-out cases."""
    z = (x - np.array(calibration.mean)) / np.array(calibration.scale)
    return _level_left_out(z @ np.array(calibration.coef), dice)


def slopes_from(x_fit: np.ndarray, dice_fit: np.ndarray, x: np.ndarray, dice: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """Like :func:`leave_one_out_intercept` for any features: slopes fitted on (x_fit, dice_fit), each case
    of (x, dice) estimated with the level fitted on the others (candidates the product lacks too)."""
    mean, scale, w = _solve(x_fit, dice_fit, ridge)
    return _level_left_out(((x - mean) / scale) @ w[1:], dice)


def _level_left_out(slope_part: np.ndarray, dice: np.ndarray) -> np.ndarray:
    out = np.empty(len(dice))
    residual = _log_error(dice) - slope_part
    for i in range(len(dice)):
        level = float(np.mean(np.delete(residual, i)))
        out[i] = np.clip(1.0 - np.exp(level + slope_part[i]), 0.0, 1.0)
    return out


def leave_one_out(x: np.ndarray, dice: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """Each case's estimate from a fit on all the others (any features: candidates the product lacks too)."""
    out = np.empty(len(dice))
    for i in range(len(dice)):
        keep = np.arange(len(dice)) != i
        out[i] = _apply(*_solve(x[keep], dice[keep], ridge), x[i : i + 1])[0]
    return out


def catch_rate(estimate: np.ndarray, dice: np.ndarray, share: float = LOWEST_SHARE, bad_below: float = BAD_BELOW) -> float:
    """Share of the masks truly below ``bad_below`` that rank among the lowest ``share`` of the estimate."""
    bad = dice < bad_below
    if not bad.any():
        return float("nan")
    lowest = np.argsort(estimate, kind="stable")[: max(1, round(share * len(estimate)))]
    return float(np.count_nonzero(bad[lowest]) / np.count_nonzero(bad))


def scores(estimate: np.ndarray, dice: np.ndarray) -> dict[str, float]:
    """Spearman, MAE and catch rate of an estimate against the true Dice."""
    return {
        "spearman": float(stats.spearmanr(estimate, dice)[0]),
        "mae": float(np.abs(estimate - dice).mean()),
        "catch_rate": catch_rate(estimate, dice),
    }


def flag_costs(estimate: np.ndarray, dice: np.ndarray, below: float, bad_below: float = BAD_BELOW) -> dict[str, float]:
    """What flagging every mask under ``below`` catches and costs: flagged share, catch, false flags."""
    flagged, bad = estimate < below, dice < bad_below
    return {
        "flagged": float(flagged.mean()),
        "caught": float(np.count_nonzero(flagged & bad) / max(np.count_nonzero(bad), 1)),
        "false_flags": float(np.count_nonzero(flagged & ~bad) / max(np.count_nonzero(flagged), 1)),
    }
