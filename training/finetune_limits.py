"""What a fine-tune accepts, in one place: every number's range, and the memory a training step will need.

``FinetuneConfig`` checks its fields against :data:`LIMITS` when it is made, and ``lung-unet finetune``
builds its options' argparse types from the same table, so the Python API refuses what the command
line refuses: ``FinetuneConfig(max_unlabeled=0)`` used to divide by zero, and ``steps=0`` registered and
promoted an untrained copy (issue 31 #7).

:func:`check_step_memory` refuses a batch that cannot fit before anything is read: ``--batch-size 1000``
used to run until the allocator failed at 7.4 GB, ``--keep-others 1000`` until 9.5 GB (issue 31 #5).
"""

from __future__ import annotations

from typing import Any

import torch

from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.resources import available_memory, gb
from napari_lung_unet.settings import Range

WHOLE = Range(int, 1)
COUNT = Range(int, 0)
AMOUNT = Range(float, 0)
FRACTION = Range(float, 0, 1)

# field -> its range (None, where a field allows it, means "the measured default")
LIMITS: dict[str, Range] = {
    "steps": WHOLE,
    "batch_size": WHOLE,
    "lr": AMOUNT,
    "replay_ratio": AMOUNT,
    "replay_match": FRACTION,
    "max_unlabeled": WHOLE,
    "ewc": AMOUNT,
    "feature_reuse": AMOUNT,
    "crop": COUNT,
    "keep_others": COUNT,
    "holdout_fraction": Range(float, 0, 1, low_open=True, high_open=True),
    "tolerance": FRACTION,
    "dataset_tolerance": FRACTION,
    "forgetting_budget": AMOUNT,
    "agreement_floor": FRACTION,
    "max_base_val": WHOLE,
    "reference_tolerance": FRACTION,
    "max_reference": COUNT,
    "seed": COUNT,
}

# Bytes a training step holds per batch item, per channel of the first level, per pixel of the side
# it trains at. Measured with the default model (16 channels) as the growth of the peak RSS of one
# forward and backward pass from batch 2 to 8: 127 MB per item training the decoder at 256² (121 B),
# 383 MB per item training the whole network at 384² (162 B).
STEP_BYTES = {True: 121, False: 162}  # by whether the encoder is frozen and its features cached
BASE_BYTES = 512 * 1024**2  # what else a fine-tune holds besides the step: torch, two models, the data sets


def check_config(config: Any) -> None:
    """Raise ``ValueError`` naming the first field of ``config`` outside its :data:`LIMITS` range."""
    for name, limits in LIMITS.items():
        value = getattr(config, name)
        if value is not None and not limits.holds(value):
            raise ValueError(f"fine-tune {name} must be {limits.text()}, got {value!r}")


def step_bytes(card: ModelCard, batch_size: int, keep_others: int, crop: int, cached: bool) -> int:
    """About how many bytes one training step needs: every item of a batch through the trained layers.

    ``keep_others`` items join each batch only where the model knows several conventions and the
    features are cached; with cached features a step trains on ``crop``-wide windows (0: whole images).
    """
    items = batch_size + (keep_others if cached and len(card.conventions) > 1 else 0)
    side = min(crop, card.input_size) if cached and crop else card.input_size
    return items * STEP_BYTES[cached] * card.architecture.base_channels * side * side


def check_step_memory(card: ModelCard, batch_size: int, keep_others: int, crop: int, cached: bool, device: torch.device) -> None:
    """Refuse, in one line, a batch whose step needs more memory than ``device`` has free."""
    need = step_bytes(card, batch_size, keep_others, crop, cached)
    if device.type == "cuda":
        free: int | None = torch.cuda.mem_get_info(device)[0]
    else:
        room = available_memory()
        free = None if room is None else max(0, room - BASE_BYTES)
    if free is not None and need > free:
        raise ValueError(
            f"a fine-tune step of {batch_size} image(s) (batch size) + {keep_others} (keep-others) needs about {gb(need)}, "
            f"and {gb(free)} is free on {device.type}: lower --batch-size or --keep-others"
        )
