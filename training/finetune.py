"""Fine-tune a registry model on accepted corrections, then promote it only if a gate says it is no worse.

Gate: the candidate and its parent are scored end to end on the same fixed sets:
- a held-out part of the corrections (never trained on), and
- the validation split of the parent's own training data, when that data is available.
The candidate becomes current only if it improves on the held-out corrections, loses at
most ``tolerance`` mean Dice on the base validation set, and loses at most
``dataset_tolerance`` on each base dataset on its own. The per-dataset check exists because
the mixed mean hides a small dataset: a trial that lost 1.28 points on Montgomery moved the
mean (mostly Shenzhen) by only 0.4. Otherwise the candidate is kept as a rejected version with
the reason in its card, so nothing is lost and nothing silently gets worse.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from napari_lung_unet.card import ModelCard, utc_now
from napari_lung_unet.device import autocast_dtype, resolve_device, uses_channels_last
from napari_lung_unet.predict import Predictor
from napari_lung_unet.model_io import LoadedModel
from napari_lung_unet.registry import Registry
from napari_lung_unet.settings import corrections_dir, data_dir

from .augment import AugmentConfig, AugmentedDataset
from .data import DatasetError, Pair, discover_pairs, load_arrays, split_of_run, stable_split
from .evaluate import LoadedCase, load_cases, mean_dice, score_cases
from .steps import train_step

Progress = Callable[[dict], None]


def dataset_key(name: str) -> str:
    """The score key of one base dataset, e.g. "montgomery_val_dice" (cards keep these names)."""
    return f"{name}_val_dice"


class FinetuneCancelled(Exception):
    """Raised when ``should_stop`` asks to stop; nothing is registered."""


@dataclass
class FinetuneConfig:
    corrections: str | None = None  # default: the widget's store under LUNG_UNET_HOME
    base_version: str | None = None  # default: the current version
    # Measured with bench/finetune_adaptation.py on the 2-core CPU (docs/benchmarks.md): 130 steps of
    # 2 corrections + 3 replay images at a peak lr of 7e-4 gain +3.3 / +4.7 Dice points on a new site
    # from 10 / 20 corrections, lose 0.7 on Montgomery and take 156 s. One correction per batch (3:1)
    # gained only +2.2 from 10; 1:1 forgot up to 1.3 points.
    steps: int = 130
    batch_size: int = 5
    lr: float = 7e-4
    replay_ratio: float = 1.5  # replay images per correction in each batch: what keeps the old sites from being forgotten
    replay: list[str] | None = None  # base dataset folders; default: the parent's training data if found
    train_layers: str = "decoder"  # "decoder" (frozen encoder: measured to forget far less) or "all"
    holdout_fraction: float = 0.25
    tolerance: float = 0.005  # allowed mean-Dice loss on the base validation set
    dataset_tolerance: float = 0.01  # allowed loss on any one base dataset: looser, as 12 cases are noisy
    max_base_val: int = 48  # cap the gate's base set so a fine-tune stays a few minutes on a laptop
    device: str = "auto"
    seed: int = 0
    home: str | None = None


@dataclass
class FinetuneResult:
    version: str
    parent: str
    promoted: bool
    reason: str
    before: dict[str, float]
    after: dict[str, float]
    seconds: float
    n_train: int
    n_holdout: int
    extra: dict = field(default_factory=dict)


def _base_roots(cfg: FinetuneConfig, parent: ModelCard) -> list[Path]:
    if cfg.replay is not None:
        return [Path(p) for p in cfg.replay]
    roots = [data_dir() / name for name in parent.training_data]
    return [r for r in roots if r.is_dir()]


def _base_split(roots: list[Path], parent: ModelCard) -> tuple[list[Pair], list[Pair]]:
    train, val = [], []
    for root in roots:
        tr, va = split_of_run(parent, root)
        train += tr
        val += va
    return train, val


def _every(pairs: list[Pair], limit: int) -> list[Pair]:
    """A fixed, evenly spread subset: the same cases every run, covering every dataset."""
    if len(pairs) <= limit:
        return pairs
    step = len(pairs) / limit
    return [pairs[int(i * step)] for i in range(limit)]


def fair_subset(pairs: list[Pair], limit: int) -> list[Pair]:
    """At most ``limit`` cases, shared between datasets so that a small one keeps all its cases.

    The gate checks each dataset on its own; an even spread over 12 Montgomery + 65 Shenzhen
    validation cases kept only 8 of Montgomery's, too few for a one-point rule.
    """
    groups: dict[str, list[Pair]] = {}
    for p in pairs:
        groups.setdefault(p.dataset, []).append(p)
    kept: dict[str, list[Pair]] = {}
    left = limit
    for i, (name, group) in enumerate(sorted(groups.items(), key=lambda item: len(item[1]))):
        kept[name] = _every(group, left // (len(groups) - i))
        left -= len(kept[name])
    return [p for name in groups for p in kept[name]]


def gate(
    before: dict[str, float], after: dict[str, float], tolerance: float,
    dataset_tolerance: float = 0.01, datasets: tuple[str, ...] = (),
) -> tuple[bool, str]:
    """Promotion rule; returns (promoted, reason). ``datasets``: the base datasets scored one by one."""
    h0, h1 = before["holdout_dice"], after["holdout_dice"]
    if not h1 > h0:
        return False, f"no gain on held-out corrections (Dice {h0:.4f} -> {h1:.4f})"
    if "base_val_dice" not in before:
        return True, f"held-out corrections Dice {h0:.4f} -> {h1:.4f} (no base validation data available)"
    b0, b1 = before["base_val_dice"], after["base_val_dice"]
    if b1 < b0 - tolerance:
        return False, f"base validation Dice dropped {b0:.4f} -> {b1:.4f} (tolerance {tolerance:.4f})"
    for name in sorted(datasets):
        d0, d1 = before[dataset_key(name)], after[dataset_key(name)]
        if d1 < d0 - dataset_tolerance:
            return False, f"{name} validation Dice dropped {d0:.4f} -> {d1:.4f} (tolerance per dataset {dataset_tolerance:.4f})"
    return True, f"held-out corrections Dice {h0:.4f} -> {h1:.4f}; base validation {b0:.4f} -> {b1:.4f}"


def _score(predictor: Predictor, holdout: list[LoadedCase], base_val: list[LoadedCase]) -> dict[str, float]:
    out = {"holdout_dice": mean_dice(score_cases(predictor, holdout))}
    if base_val:
        scores = score_cases(predictor, base_val)
        out["base_val_dice"] = mean_dice(scores)
        for name in sorted({s.dataset for s in scores}):
            out[dataset_key(name)] = mean_dice([s for s in scores if s.dataset == name])
    return out


def _freeze_encoder(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    for p in model.encoders.parameters():
        p.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def finetune(cfg: FinetuneConfig, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> FinetuneResult:
    t0 = time.perf_counter()
    emit = progress or (lambda event: None)
    stop = should_stop or (lambda: False)
    registry = Registry(cfg.home)
    parent_version = cfg.base_version or registry.current_version()
    parent: LoadedModel = registry.load(parent_version)
    parent_version = parent.card.version
    card = parent.card

    emit({"stage": "loading", "message": "reading corrections"})
    store = Path(cfg.corrections) if cfg.corrections else corrections_dir()
    try:
        pairs = discover_pairs(store)
    except DatasetError as exc:
        raise DatasetError(f"no corrections to fine-tune on: {exc}") from None
    if len(pairs) >= 2:
        train_pairs, holdout_pairs = stable_split(pairs, cfg.holdout_fraction, cfg.seed)
        if not holdout_pairs:
            holdout_pairs, train_pairs = train_pairs[-1:], train_pairs[:-1]
        if not train_pairs:
            train_pairs, holdout_pairs = holdout_pairs[:-1], holdout_pairs[-1:]
    else:  # one correction: nothing to hold out, so the gate can only check it was learnt
        train_pairs, holdout_pairs = pairs, pairs
    base_roots = _base_roots(cfg, card)
    base_train, base_val = _base_split(base_roots, card) if base_roots else ([], [])

    size, norm = card.input_size, card.normalisation
    corr = load_arrays(train_pairs, size, norm, show_progress=False)
    replay_n = min(len(base_train), math.ceil(len(train_pairs) * cfg.replay_ratio * 4))
    replay = load_arrays(_every(base_train, replay_n), size, norm, show_progress=False) if replay_n else None
    holdout = load_cases(holdout_pairs)
    base_val_cases = load_cases(fair_subset(base_val, cfg.max_base_val))

    device = resolve_device(cfg.device)
    emit({"stage": "gate", "message": f"scoring {parent_version}"})
    before = _score(Predictor(parent, device=device), holdout, base_val_cases)

    torch.manual_seed(cfg.seed)
    model = copy.deepcopy(parent.model).to(device)
    if uses_channels_last(device):
        model = model.to(memory_format=torch.channels_last)
    params = _freeze_encoder(model) if cfg.train_layers == "decoder" else list(model.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    # Cosine decay to zero: at a constant lr the last few steps decide where the weights land, and
    # repeated runs differed by a point of forgetting; decaying settles them.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.steps))
    amp = autocast_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    corr_ds = AugmentedDataset(corr, AugmentConfig(), cfg.seed)
    replay_ds = AugmentedDataset(replay, AugmentConfig(), cfg.seed + 1) if replay else None
    n_corr = max(1, round(cfg.batch_size / (1 + cfg.replay_ratio))) if replay_ds else cfg.batch_size
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    t_train = time.perf_counter()
    for step in range(cfg.steps):
        if stop():
            raise FinetuneCancelled("fine-tuning cancelled; the current model is unchanged")
        corr_ds.epoch = step
        idx = torch.randint(len(corr_ds), (n_corr,), generator=gen).tolist()
        items = [corr_ds[i] for i in idx]
        if replay_ds:
            replay_ds.epoch = step
            items += [replay_ds[i] for i in torch.randint(len(replay_ds), (cfg.batch_size - n_corr,), generator=gen).tolist()]
        x = torch.stack([a for a, _ in items])
        y = torch.stack([b for _, b in items])
        loss, _ = train_step(model, x, y, opt, scaler, amp, device)
        schedule.step()
        elapsed = time.perf_counter() - t_train
        emit({"stage": "train", "step": step + 1, "steps": cfg.steps, "loss": float(loss),
              "eta_s": elapsed / (step + 1) * (cfg.steps - step - 1)})
    model.eval()

    version = registry.new_version_name()
    cand_card = ModelCard(
        version=version, architecture=card.architecture, input_size=card.input_size, normalisation=card.normalisation,
        threshold=card.threshold, training_data=[*card.training_data, f"corrections:{store}"], parent=parent_version,
        created=utc_now(), status="candidate",
        extra={**{k: v for k, v in card.extra.items() if k == "train_config"},
               "finetune": {"steps": cfg.steps, "lr": cfg.lr, "replay_ratio": cfg.replay_ratio, "train_layers": cfg.train_layers,
                            "n_train": len(train_pairs), "n_holdout": len(holdout_pairs), "replay_images": replay_n,
                            "train_cases": [p.case_id for p in train_pairs], "holdout_cases": [p.case_id for p in holdout_pairs]}},
    )
    emit({"stage": "gate", "message": f"scoring candidate {version}"})
    after = _score(Predictor(LoadedModel(model, cand_card, Path()), device=device), holdout, base_val_cases)
    datasets = tuple(sorted({c.pair.dataset for c in base_val_cases}))
    promoted, reason = gate(before, after, cfg.tolerance, cfg.dataset_tolerance, datasets)
    cand_card.status = "promoted" if promoted else "rejected"
    cand_card.notes = reason
    cand_card.metrics = {"before": before, "after": after}
    if stop():
        raise FinetuneCancelled("fine-tuning cancelled; the current model is unchanged")
    registry.add(model.cpu(), cand_card)
    if promoted:
        registry.set_current(version)
    result = FinetuneResult(version, parent_version, promoted, reason, before, after, time.perf_counter() - t0,
                            len(train_pairs), len(holdout_pairs))
    emit({"stage": "done", "result": result})
    return result
