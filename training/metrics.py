"""Dice + BCE loss and the seed's per-image metrics: Dice, IoU, precision, recall."""

from __future__ import annotations

import torch
import torch.nn.functional as F

METRIC_NAMES = ("dice", "iou", "precision", "recall")


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    prob = torch.sigmoid(logits)
    dims = tuple(range(1, logits.ndim))
    inter = (prob * target).sum(dims)
    dice = (2 * inter + smooth) / (prob.sum(dims) + target.sum(dims) + smooth)
    return (1 - dice).mean() + F.binary_cross_entropy_with_logits(logits, target)


def binary_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image metrics for boolean N×H×W (or N×1×H×W) predictions and targets.

    Empty-vs-empty counts as a perfect score, so a correct "no lung" answer is not penalised.
    """
    pred, target = pred.bool().flatten(1), target.bool().flatten(1)
    tp = (pred & target).sum(1).double()
    fp = (pred & ~target).sum(1).double()
    fn = (~pred & target).sum(1).double()

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return torch.where(den > 0, num / den.clamp(min=1), torch.ones_like(num))

    return {
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
    }
