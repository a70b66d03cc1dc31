"""The fine-tuning loop: corrections, optional replay, an EWC pull towards the parent, cosine lr."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from napari_lung_unet.nn.device import autocast_dtype, uses_channels_last

from .augment import AugmentConfig, AugmentedDataset
from .data import ArrayData
from .finetune_data import Reference
from .fisher import ewc_penalty
from .feature_cache import REUSE, FeatureCache, build_cache, in_other_conventions, item_bytes, plan_copies
from .steps import optimise_step, train_step


ETA_AFTER_STEPS = 3  # steps timed before an ETA is given: the first pays for warm-up and says little


def eta_seconds(step_times: list[float], steps_left: int, after_s: float) -> float | None:
    """Seconds to the result: the median measured step (the first left out: warm-up) times the
    steps left, plus what follows training. None until ``ETA_AFTER_STEPS`` steps are timed.

    The ETA used to be training's mean step so far times the steps left, and nothing for what
    follows (the gate scores the parent and the candidate on every held-out and validation case):
    it said 113 s for a run that took 204 s.
    """
    if len(step_times) < ETA_AFTER_STEPS:
        return None
    return statistics.median(step_times[1:]) * steps_left + after_s


class FinetuneCancelled(Exception):
    """Raised when ``should_stop`` asks to stop; nothing is registered."""


@dataclass
class LoopSettings:
    steps: int
    batch_size: int
    lr: float
    replay_per_batch: int  # replayed base (or pseudo-labelled) images added to each batch
    train_layers: str  # see TRAINABLE
    ewc: float  # λ of the Fisher penalty; 0: none
    seed: int
    after_s: float = 0.0  # what follows training (the gate), measured before it: part of every ETA
    # With a frozen encoder, augmented copies of each image made and encoded once, before the steps,
    # each drawn about this many times (training/feature_cache.py); 0: a fresh augmentation and a
    # whole forward pass every step.
    reuse: float = REUSE
    # With cached features: each step trains on a crop×crop window of each image (0: the whole
    # image). The decoder's cost goes with the pixels; the skip features still carry the whole
    # image's context, as the encoder saw it (docs/benchmarks.md, "fine-tune crops").
    crop: int = 0
    # With cached features and a model of several conventions: items per batch that ask the other
    # conventions to keep the parent's masks on the corrections' images (feature_cache.in_other_conventions).
    keep_others: int = 1


# Which weights a fine-tune may change (the rest keep the parent's values), by parameter name and
# the index of the encoder's deepest block:
TRAINABLE: dict[str, Callable[[str, int], bool]] = {
    "all": lambda name, deepest: True,
    "decoder": lambda name, deepest: not name.startswith("encoders."),
    # the decoder's normalisation scales and shifts only (a few thousand numbers)
    "norm": lambda name, deepest: name.startswith("decoders.") and ".conv." in name and name.rsplit(".", 2)[-2] in ("1", "4"),
    "last": lambda name, deepest: name.startswith(("head.", "decoders.3.")),  # the full-resolution stage and the head
    # the decoder and the encoder's deepest block; the shallower blocks stay cached
    "tail": lambda name, deepest: not name.startswith("encoders.") or name.startswith(f"encoders.{deepest}."),
}


def freeze_encoder(model: torch.nn.Module) -> None:
    """Frozen encoder weights, and every BatchNorm's statistics (:func:`freeze_statistics`): in train
    mode the encoder's running means would drift towards the corrections' site even with its weights fixed."""
    for p in model.encoders.parameters():
        p.requires_grad_(False)
    model.encoders.eval()
    freeze_statistics(model)


def freeze_statistics(model: torch.nn.Module) -> None:
    """Every BatchNorm normalises with the parent's running statistics; their scales and shifts still
    train. In train mode 50 steps at momentum 0.1 replace the decoder's statistics (0.9^50 < 1 %) with
    those of a few batches of 256-px windows, and every output moves with them, the other convention's too."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def _has_statistics(model: torch.nn.Module) -> bool:
    return any(int(m.num_batches_tracked) > 0 for m in model.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.num_batches_tracked is not None)


def _set_trainable(model: torch.nn.Module, layers: str) -> None:
    freeze_encoder(model)
    deepest = len(model.encoders) - 1
    for name, p in model.named_parameters():
        p.requires_grad_(TRAINABLE[layers](name, deepest))


def train_candidate(
    parent: torch.nn.Module, corrections: ArrayData, replay: ArrayData | None, reference: Reference | None,
    s: LoopSettings, device: torch.device, emit: Callable[[dict], None], stop: Callable[[], bool],
) -> torch.nn.Module:
    """A copy of ``parent`` trained for ``s.steps`` steps; the parent is left untouched."""
    torch.manual_seed(s.seed)
    model = copy.deepcopy(parent).to(device)
    if uses_channels_last(device):
        model = model.to(memory_format=torch.channels_last)
    model.train()
    if s.train_layers != "all":
        _set_trainable(model, s.train_layers)
    elif _has_statistics(parent):
        # The parent's BatchNorm statistics with the encoder free too: 100 steps' batches replaced
        # them and moved the old cases of every convention (docs/benchmarks.md, "Fine-tune levers at a new site, round 3").
        # An untrained parent has none worth keeping.
        freeze_statistics(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=s.lr)
    # Cosine decay to zero: at a constant lr the last few steps decide where the weights land, and
    # repeated runs differed by a point of forgetting; decaying settles them.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, s.steps))
    amp = autocast_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    cached = s.train_layers != "all" and s.reuse > 0
    n_replay = s.replay_per_batch if replay is not None else 0
    copies, replay_copies, others = 1, 1, None
    if cached:
        copies, replay_copies = plan_copies([s.steps * (s.batch_size - n_replay), s.steps * n_replay],
                                            [len(corrections), len(replay) if n_replay else 0],
                                            item_bytes(model, corrections.images.shape[-1]), s.reuse)
        emit({"stage": "loading", "message": "encoding the augmented images once (the encoder is frozen)"})
        corr_cache = build_cache(model, corrections, copies, s.seed, device)
        replay_cache = build_cache(model, replay, replay_copies, s.seed + 1, device) if n_replay else None
        model.eval()  # still the parent's weights: its own masks in the other conventions
        others = in_other_conventions(model, corr_cache, device) if s.keep_others else None
        model.train()
        _set_trainable(model, s.train_layers)
    else:
        corr_ds = AugmentedDataset(corrections, AugmentConfig(), s.seed)
        replay_ds = AugmentedDataset(replay, AugmentConfig(), s.seed + 1) if replay is not None and s.replay_per_batch else None
    gen = torch.Generator().manual_seed(s.seed)
    pull = None
    if reference is not None and s.ewc:
        anchor = {k: v.to(device) for k, v in reference.anchor.items()}
        fisher = {k: v.to(device) for k, v in reference.fisher.items()}

        def pull() -> torch.Tensor:
            return s.ewc * ewc_penalty(model, anchor, fisher)

    step_times: list[float] = []
    for step in range(s.steps):
        started = time.perf_counter()
        if stop():
            raise FinetuneCancelled("fine-tuning cancelled; the current model is unchanged")
        picks = torch.randint(len(corrections) * copies, (s.batch_size - n_replay,), generator=gen).tolist()
        replay_picks = torch.randint(len(replay) * replay_copies, (n_replay,), generator=gen).tolist() if n_replay else []
        if cached:
            pools = [(corr_cache, picks), (replay_cache, replay_picks)]
            if others is not None:
                pools.append((others, torch.randint(len(others), (s.keep_others,), generator=gen).tolist()))
            loss, _ = _cached_step(model, pools, opt, scaler, amp, device, pull, s.crop, gen, s.train_layers == "tail")
        else:
            corr_ds.epoch = step
            items = [corr_ds[i] for i in picks]
            if replay_ds:
                replay_ds.epoch = step
                items += [replay_ds[i] for i in replay_picks]
            x = torch.stack([item[0] for item in items])
            y = torch.stack([item[1] for item in items])
            outputs = torch.tensor([item[2] for item in items])  # each image trains its own convention's output
            loss, _ = train_step(model, x, y, opt, scaler, amp, device, pull, outputs)
        schedule.step()
        loss_value = float(loss)  # waits for the device: the step is timed whole
        step_times.append(time.perf_counter() - started)
        emit({"stage": "train", "step": step + 1, "steps": s.steps, "loss": loss_value,
              "eta_s": eta_seconds(step_times, s.steps - step - 1, s.after_s)})
    return model.eval()


def _cached_step(
    model: torch.nn.Module, pools: list[tuple[FeatureCache | None, list[int]]],
    opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, amp: torch.dtype | None, device: torch.device,
    pull: Callable[[], torch.Tensor] | None, crop: int = 0, gen: torch.Generator | None = None, tail: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step on cached features: each pool's picks (corrections, replay, other conventions) as one batch."""
    parts = [cache.batch(picks, device, crop, gen) for cache, picks in pools if cache is not None and picks]
    feats = [torch.cat(level) for level in zip(*(p[0] for p in parts))]
    y, outputs = torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts])

    def forward() -> torch.Tensor:
        if not tail:
            return model.decode(feats, outputs)
        # the deepest level again, through the encoder's last block as it is now
        deepest = model.encoders[-1](torch.nn.functional.max_pool2d(feats[-2], 2))
        return model.decode([*feats[:-1], deepest], outputs)

    return optimise_step(forward, y, opt, scaler, amp, device, pull, outputs)


@torch.no_grad()
def estimated_drift(model: torch.nn.Module, reference: Reference) -> float:
    """½ Σ F (θ − θ*)² with λ = 1, per pixel: the second-order estimate of the KL divergence between
    the parent's and the candidate's predictions on an original training image (see fisher.py),
    divided by its pixels so that a tiny test model and default-2 share one budget."""
    return float(ewc_penalty(model, reference.anchor, reference.fisher)) / reference.pixels
