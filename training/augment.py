"""Chest X-ray augmentation on tensors.

Geometry: small rotation (±10°), scale (±10%) and shift (±5%). Never vertical flips: a
radiograph is never upside down. Horizontal flips are off by default (``hflip=0``): the lungs
are labelled 1/2 by position after segmentation, so a flip would not corrupt labels, but a
mirrored chest (heart on the patient's right) does not occur in standard PA films, and the left
lung's cardiac notch is a shape cue that flips would teach the network to ignore. ``--hflip P``
turns them on with probability P, to measure that choice.
Intensity: brightness, contrast, gamma, Gaussian noise and blur, for scanner and exposure variation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from .data import ArrayData


@dataclass(frozen=True)
class AugmentConfig:
    rotate_deg: float = 10.0
    scale: float = 0.10
    shift: float = 0.05
    brightness: float = 0.10
    contrast: float = 0.20
    gamma: tuple[float, float] = (0.7, 1.5)
    noise_std: float = 0.03
    blur_prob: float = 0.2
    hflip: float = 0.0


def augment(image: torch.Tensor, mask: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment one H×W image/mask pair; ``gen`` makes it reproducible per sample."""

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=gen))

    angle = math.radians(u(-cfg.rotate_deg, cfg.rotate_deg))
    s = 1.0 / u(1 - cfg.scale, 1 + cfg.scale)
    tx, ty = u(-cfg.shift, cfg.shift) * 2, u(-cfg.shift, cfg.shift) * 2
    theta = torch.tensor(
        [[s * math.cos(angle), -s * math.sin(angle), tx], [s * math.sin(angle), s * math.cos(angle), ty]]
    )[None]
    both = torch.stack([image, mask])[None]
    grid = F.affine_grid(theta, list(both.shape), align_corners=False)
    warped = F.grid_sample(both, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    img, msk = warped[0], (warped[1] > 0.5).float()
    if cfg.hflip and float(torch.rand((), generator=gen)) < cfg.hflip:
        img, msk = img.flip(-1), msk.flip(-1)

    img = img.clamp(0, 1) ** u(*cfg.gamma)
    mean = img.mean()
    img = (img - mean) * u(1 - cfg.contrast, 1 + cfg.contrast) + mean + u(-cfg.brightness, cfg.brightness)
    if float(torch.rand((), generator=gen)) < cfg.blur_prob:
        sigma = u(0.5, 1.2)
        k = torch.exp(-(torch.arange(-2, 3, dtype=torch.float32) ** 2) / (2 * sigma**2))
        k = k / k.sum()
        img = F.conv2d(img[None, None], k.view(1, 1, 1, 5), padding=(0, 2))
        img = F.conv2d(img, k.view(1, 1, 5, 1), padding=(2, 0))[0, 0]
    img = img + torch.randn(img.shape, generator=gen) * u(0.0, cfg.noise_std)
    return img.clamp(0, 1), msk


class AugmentedDataset(Dataset):
    """Preloaded tensors, augmented per sample so DataLoader workers can share the work.

    Each sample's randomness depends only on (seed, epoch, index): a resumed run or another
    worker count sees the same augmentations.
    """

    def __init__(self, data: ArrayData, cfg: AugmentConfig | None, seed: int, repeat: dict[int, int] | None = None) -> None:
        self.data, self.cfg, self.seed, self.epoch = data, cfg, seed, 0
        # repeat[output]: how many times each case of that output (convention) is seen per epoch; each
        # copy is its own sample index, so the copies get different augmentations
        times = [(repeat or {}).get(data.output_of(i), 1) for i in range(len(data))]
        self.cases = [i for i, k in enumerate(times) for _ in range(k)]

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        i = self.cases[j]
        img, msk = self.data.images[i], self.data.masks[i]
        if self.cfg is not None:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + j)
            img, msk = augment(img, msk, self.cfg, gen)
        return img[None], msk[None], self.data.output_of(i)
