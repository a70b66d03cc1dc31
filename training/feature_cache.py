"""Encoder features computed once, for a fine-tune whose encoder is frozen.

With the encoder's weights and BatchNorm statistics fixed (finetune_loop.freeze_encoder), its
output for a given augmented image never changes during a fine-tune, and it takes no gradient.
So a fixed number of augmented copies of each image is made up front, encoded once, and every
step decodes a batch of them: the same loss and gradients as running the whole network on those
copies, without the encoder's forward pass or the augmentation at every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from napari_lung_unet.nn.device import uses_channels_last
from napari_lung_unet.nn.model import UNet

from .augment import AugmentConfig, AugmentedDataset
from .data import ArrayData

ENCODE_BATCH = 8  # images encoded at once: a few hundred MB of activations at 384²
# How many augmented copies: each cached item is drawn about REUSE times over the steps. Fewer
# copies (2 per replayed image, reused ~5 times) let a pseudo-labelled replay of 6 images lose the
# parent's masks in tests/test_finetune.py's agreement check; 4 keeps them.
REUSE = 4.0
BUDGET_BYTES = 3 * 2**29  # 1.5 GiB of cached features at most: copies are cut (to 1 each at least) to fit
# Copies of one image at most. The default schedules ask for 45 at most (one correction, no replay);
# a long run (--steps 100000) asked for thousands, and spent half a minute encoding up to the budget
# before its first step, for augmentations it would then draw a thousand times each anyway.
MAX_COPIES = 64


@dataclass
class FeatureCache:
    """``copies`` augmented copies of each image of a dataset: their encoder features (one tensor per
    level, stored on the CPU in ``dtype``), masks and outputs (conventions). Item ``c * n + i`` is
    copy ``c`` of image ``i``: the augmentation :class:`AugmentedDataset` gives it at epoch ``c``."""

    features: list[torch.Tensor]  # per encoder level: items × C × H × W
    masks: torch.Tensor  # items × 1 × S × S, 0/1
    outputs: torch.Tensor  # items, int64

    def __len__(self) -> int:
        return len(self.outputs)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [*self.features, self.masks])

    def batch(
        self, index: list[int], device: torch.device, crop: int = 0, gen: torch.Generator | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """(features in float32 on ``device``, masks, outputs) of the items ``index``.

        ``crop`` > 0: a crop×crop window of each item, at a random place (from ``gen``) on the grid of
        the deepest level, cut from every level alike: what the encoder gives for that window, away
        from its edges (the decoder sees the whole image's context in its skip features)."""
        at = torch.tensor(index, dtype=torch.long)
        fmt = torch.channels_last if uses_channels_last(device) else torch.contiguous_format
        feats = [t[at] for t in self.features]
        masks = self.masks[at]
        side = feats[0].shape[-1]
        grid = side // feats[-1].shape[-1]  # input pixels per cell of the deepest level
        crop -= crop % grid
        if 0 < crop < side and masks.shape[-1] == side:
            corners = (torch.randint((side - crop) // grid + 1, (len(index), 2), generator=gen) * grid).tolist()

            def cut(t: torch.Tensor) -> torch.Tensor:  # one window of every item of one level
                scale = side // t.shape[-1]
                return torch.stack([t[k, :, y // scale:(y + crop) // scale, x // scale:(x + crop) // scale]
                                    for k, (y, x) in enumerate(corners)])

            feats, masks = [cut(f) for f in feats], cut(masks)
        feats = [t.to(device, torch.float32).contiguous(memory_format=fmt) for t in feats]
        return feats, masks.to(device, torch.float32), self.outputs[at]


def item_bytes(model: UNet, size: int, dtype: torch.dtype = torch.float16) -> int:
    """The cache's bytes per item: every encoder level of one size×size image, and its mask."""
    cfg = model.config
    side = size + (-size) % cfg.multiple
    return sum(cfg.base_channels * 2**i * (side >> i) ** 2 for i in range(cfg.depth + 1)) * dtype.itemsize + size * size


def plan_copies(draws: list[int], images: list[int], per_item: int, reuse: float = REUSE, budget: int = BUDGET_BYTES) -> list[int]:
    """Copies of each image of each set: ``draws`` of a set over the whole fine-tune / (images × ``reuse``),
    at least 1 and at most ``MAX_COPIES``; over ``budget``, the set with the most copies gives one up until it fits (or all are at 1)."""
    copies = [min(MAX_COPIES, max(1, math.ceil(d / (n * reuse)))) if n else 0 for d, n in zip(draws, images)]
    while sum(c * n for c, n in zip(copies, images)) * per_item > budget and max(copies) > 1:
        copies[copies.index(max(copies))] -= 1
    return copies


def concat_caches(caches: list[FeatureCache]) -> FeatureCache:
    return FeatureCache([torch.cat(level) for level in zip(*(c.features for c in caches))],
                        torch.cat([c.masks for c in caches]), torch.cat([c.outputs for c in caches]))


@torch.no_grad()
def build_cache(
    model: UNet, data: ArrayData, copies: int, seed: int, device: torch.device,
    augment: AugmentConfig | None = None, dtype: torch.dtype = torch.float16,
) -> FeatureCache:
    """Encode ``copies`` augmented copies of every image of ``data`` with ``model``'s encoder, which
    must be frozen (in eval mode): its features are then the ones a training step would compute.

    float16 storage halves the memory (about 9 MB per 384² item for default-2's widths); the
    features are ReLU outputs of BatchNorm, well inside float16's range, and are rounded to about
    3 significant digits (tests/test_feature_cache.py measures what that does to the gradients).
    """
    if model.encoders.training:
        raise ValueError("build_cache needs a frozen encoder (eval mode): its features would change while training")
    ds = AugmentedDataset(data, augment if augment is not None else AugmentConfig(), seed)
    order = [(c, i) for c in range(copies) for i in range(len(data))]
    levels: list[list[torch.Tensor]] = []
    masks, outputs = [], []
    fmt = torch.channels_last if uses_channels_last(device) else torch.contiguous_format
    for start in range(0, len(order), ENCODE_BATCH):
        items = []
        for c, i in order[start:start + ENCODE_BATCH]:
            ds.epoch = c
            items.append(ds[i])
        x = torch.stack([it[0] for it in items]).to(device).contiguous(memory_format=fmt)
        for level, t in enumerate(model.encode(x)):
            if level == len(levels):
                levels.append([])
            levels[level].append(t.to("cpu", dtype))
        masks.append(torch.stack([it[1] for it in items]).to(torch.uint8))
        outputs += [it[2] for it in items]
    return FeatureCache([torch.cat(parts) for parts in levels], torch.cat(masks), torch.tensor(outputs, dtype=torch.int64))


@torch.no_grad()
def in_other_conventions(model: UNet, cache: FeatureCache, device: torch.device) -> FeatureCache | None:
    """Every cached item again, as a target of each of ``model``'s *other* outputs, with ``model``'s
    own mask there (None for a one-convention model). ``model`` must be the parent, in eval mode.

    A correction trains only its own convention, yet the decoder is shared (FiLM): 7 whole-lung
    corrections alone moved default-3's lung-fields masks by 8 points on the shipped reference set
    and cost Montgomery 3 points. Asking the other outputs to keep the parent's masks on the same
    images holds them where they were; the correction's mask is never the target of another convention.
    """
    k = model.config.out_channels
    if k < 2 or not len(cache):
        return None
    rounds, side = [], cache.masks.shape[-1]
    for shift in range(1, k):  # round ``shift`` gives every item one other output: the features are shared, not copied
        outputs = (cache.outputs + shift) % k
        masks = []
        for start in range(0, len(cache), ENCODE_BATCH):
            index = list(range(start, min(start + ENCODE_BATCH, len(cache))))
            feats, _, _ = cache.batch(index, device)
            logits = model.decode(feats, outputs[index])
            chosen = logits[torch.arange(len(index)), outputs[index].to(logits.device)]
            masks.append((chosen[:, None, :side, :side] > 0).to("cpu", torch.uint8))
        rounds.append(FeatureCache(cache.features, torch.cat(masks), outputs))
    return rounds[0] if k == 2 else concat_caches(rounds)
