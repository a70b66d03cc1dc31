"""Chest X-ray augmentation: reproducible, masks stay binary, flips only when asked for."""

from __future__ import annotations

import numpy as np
import torch

from napari_lung_unet.images.phantom import make_phantom
from training.augment import AugmentConfig, augment


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    image, labels = make_phantom((96, 80), seed=3, dtype=np.float32)
    image = torch.as_tensor(image, dtype=torch.float32)
    image = (image - image.min()) / (image.max() - image.min())
    return image, torch.as_tensor(labels > 0, dtype=torch.float32)


def test_same_generator_seed_gives_the_same_sample_and_masks_stay_binary() -> None:
    image, mask = _pair()
    a = augment(image, mask, AugmentConfig(), torch.Generator().manual_seed(5))
    b = augment(image, mask, AugmentConfig(), torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert set(torch.unique(a[1]).tolist()) <= {0.0, 1.0}
    assert 0.0 <= float(a[0].min()) and float(a[0].max()) <= 1.0
    # the geometry moves the lungs only a little: most of the mask stays where it was
    overlap = float((a[1] * mask).sum() / mask.sum())
    assert overlap > 0.7


def test_horizontal_flip_mirrors_image_and_mask_together_only_when_enabled() -> None:
    image, mask = _pair()
    plain = augment(image, mask, AugmentConfig(), torch.Generator().manual_seed(7))
    flipped = augment(image, mask, AugmentConfig(hflip=1.0), torch.Generator().manual_seed(7))
    # geometry is drawn before the flip, so the flipped mask is the plain one mirrored
    assert torch.equal(flipped[1], plain[1].flip(-1))
    assert not torch.equal(flipped[1], plain[1])
    never = [augment(image, mask, AugmentConfig(), torch.Generator().manual_seed(s))[1] for s in range(5)]
    mirrored = [augment(image, mask, AugmentConfig(hflip=1.0), torch.Generator().manual_seed(s))[1] for s in range(5)]
    assert all(torch.equal(m, n.flip(-1)) for m, n in zip(mirrored, never))


def test_a_repeated_case_is_seen_that_often_and_each_copy_augmented_afresh() -> None:
    """``lung-unet train --repeat whole-lung=3``: a whole-lung case comes three times per epoch, as three
    different augmentations of the same case; a lung-fields case once."""
    from training.augment import AugmentedDataset
    from training.data import ArrayData

    image, mask = _pair()
    data = ArrayData(torch.stack([image, image.flip(0)]), torch.stack([mask, mask.flip(0)]), ["lf", "wl"], torch.tensor([0, 1]))
    ds = AugmentedDataset(data, AugmentConfig(), seed=0, repeat={1: 3})
    items = [ds[j] for j in range(len(ds))]
    assert len(ds) == 4 and [it[2] for it in items] == [0, 1, 1, 1]
    copies = [it[0] for it in items[1:]]
    assert not torch.equal(copies[0], copies[1]) and not torch.equal(copies[1], copies[2])
    # each copy is still that case (the upside-down one): its mask overlaps that case's more than the other's
    for _, m, _ in items[1:]:
        assert float((m[0] * mask.flip(0)).sum()) > float((m[0] * mask).sum())
