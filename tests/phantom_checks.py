"""Checks that a labels image belongs to its radiograph, shared by the phantom and sample-data tests."""

from __future__ import annotations

import numpy as np


def lungs_darker_than_mediastinum(image: np.ndarray, labels: np.ndarray) -> float:
    """The share of rows crossing both lungs where the lung pixels are darker (air) than the mediastinum between them."""
    rows = [r for r in range(labels.shape[0]) if (labels[r] == 1).any() and (labels[r] == 2).any()]
    darker = 0
    for r in rows:
        inner_right, inner_left = np.nonzero(labels[r] == 1)[0].max(), np.nonzero(labels[r] == 2)[0].min()
        darker += image[r][labels[r] > 0].astype(float).mean() < image[r, inner_right + 1:inner_left].astype(float).mean()
    assert len(rows) > labels.shape[0] // 3, "the lungs should span a third of the film's height side by side"
    return darker / len(rows)
