"""What the model said about a mask, through refines and napari-style undo and redo."""

from __future__ import annotations

import numpy as np

from napari_lung_unet.widget.model_mask import ModelMask

BOX = (slice(0, 6), slice(0, 6))


def test_painting_is_what_differs_from_the_model_and_an_undone_refine_is_not_painting() -> None:
    proposal = np.zeros((6, 6), np.uint8)
    proposal[:3] = 1
    said, layer = ModelMask(proposal), proposal.copy()
    layer[5, 5] = 2  # a hand stroke
    assert said.painted(layer, BOX).sum() == 1 and said.painted(layer, BOX)[5, 5]

    indices = (np.array([3, 3]), np.array([0, 1]))  # a refine grows the lung by two pixels
    old, new = layer[indices].copy(), np.array([1, 1], np.uint8)
    layer[indices] = new
    said.refined(indices, old, new)
    assert said.painted(layer, BOX).sum() == 1  # the refine's pixels are the model's, not the hand's

    layer[indices] = old  # napari's undo writes the old values back
    said.follow_history(layer)
    assert said.painted(layer, BOX).sum() == 1  # an undone refine does not look painted
    layer[indices] = new  # and its redo
    said.follow_history(layer)
    assert said.painted(layer, BOX).sum() == 1 and np.array_equal(said.said[indices], new)
