"""Train a U-Net from scratch: Adam, ReduceLROnPlateau, early stopping, best checkpoint, CSV log, resume, DDP.

Run on one device with ``lung-unet train``, or on several with
``torchrun --nproc_per_node=N -m napari_lung_unet.cli.train ...`` (same arguments): each rank trains on
its own shard and DDP averages the gradients, so all ranks hold identical weights.
"""

from __future__ import annotations

import math
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from napari_lung_unet.images.conventions import DEFAULT_CONVENTION
from napari_lung_unet.nn.card import ModelCard, Normalisation
from napari_lung_unet.nn.device import autocast_dtype, describe_device, resolve_device, uses_channels_last
from napari_lung_unet.nn.model import UNet, UNetConfig
from napari_lung_unet.nn.model_io import load_model, save_model
from napari_lung_unet.store.atomic import atomic_path, atomic_write_json
from napari_lung_unet.text import progress_bar

from .augment import AugmentConfig, AugmentedDataset
from .data import (DEFAULT_SPLIT_SEED, DEFAULT_VAL_FRACTION, ArrayData, discover_pairs, load_arrays, read_case_conventions,
                   split_convention, stable_split, tag_conventions)
from .fisher import compute_fisher, save_fisher
from .metrics import METRIC_NAMES, binary_metrics, dice_bce_loss
from .runlog import LOG_NAME, read_log, write_log
from .steps import select_outputs, train_step
from .warm_start import widened

LAST_CHECKPOINT = "last.ckpt"
BEST_DIR = "best"


@dataclass
class TrainConfig:
    data: list[str]  # dataset folders, each optionally ``PATH@convention`` (default lung-fields)
    output: str
    base_channels: int = 16
    depth: int = 4
    norm: str = "batch"
    upsample: str = "transpose"
    conditioning: str = "head"  # with several conventions: "head" or "film" (nn/model.py)
    input_size: int = 256
    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    val_fraction: float = DEFAULT_VAL_FRACTION
    seed: int = DEFAULT_SPLIT_SEED
    early_stopping: int = 10
    lr_patience: int = 5
    lr_factor: float = 0.1
    min_lr: float = 1e-7
    workers: int = -1  # -1: pick by device
    device: str = "auto"
    augment: bool = True
    hflip: float = 0.0  # probability of a horizontal flip in augmentation (see augment.py for why 0)
    max_steps_per_epoch: int = 0  # 0 = whole epoch; small values keep tests fast
    version: str = "default"
    resume: bool = True
    init_from: str = ""  # start from these weights (a model folder) instead of random ones
    fisher_images: int = 256  # images for the Fisher file shipped beside the best model (0: none); see fisher.py
    show_progress: bool = True
    conventions: list[str] = field(default_factory=lambda: [DEFAULT_CONVENTION])  # one model output each, in order
    case_conventions: str = ""  # CSV of per-case exceptions to a dataset's convention (dataset, case_id, convention)
    repeat: dict[str, int] = field(default_factory=dict)  # convention -> times each such case is seen per epoch
    extra: dict = field(default_factory=dict)

    def arch(self) -> UNetConfig:
        return UNetConfig(base_channels=self.base_channels, depth=self.depth, norm=self.norm, upsample=self.upsample,  # type: ignore[arg-type]
                          out_channels=len(self.conventions), conditioning=self.conditioning)  # type: ignore[arg-type]


@dataclass
class RunState:
    """What survives an epoch and a resume: where we are and how the best model did."""

    epoch: int = 0
    best: float = -1.0
    stale: int = 0
    rows: list[dict] = field(default_factory=list)


# FiLM's per-convention scales and shifts start at the identity and must travel far in a short
# warm-started run (a shift of ~1 moves a feature map by a ReLU's worth); at the shared weights'
# learning rate they would move < 0.2 in 600 steps
FILM_LR_SCALE = 20.0


def _param_groups(model: torch.nn.Module, lr: float) -> list[dict]:
    film = [p for n, p in model.named_parameters() if n.startswith("film.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("film.")]
    return [{"params": rest}] + ([{"params": film, "lr": lr * FILM_LR_SCALE}] if film else [])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _maybe_init_distributed(device: torch.device) -> bool:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        return True
    return False


def average_buffers(model: torch.nn.Module) -> None:
    """Average BatchNorm running stats over ranks: DDP syncs gradients, not buffers, and each rank
    saw different images, so without this the ranks would end the epoch with different models."""
    world = dist.get_world_size()
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(world)


def load_checkpoint(path: Path) -> dict:
    """Read ``last.ckpt`` without unpickling code; a file that needs pickle is refused by name."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError or RuntimeError for unsafe or damaged files
        raise ValueError(
            f"{path}: not a checkpoint this trainer wrote (it is damaged or holds objects other than tensors); "
            f"delete it or train with --no-resume ({type(exc).__name__})"
        ) from None


def restore_training_state(model: torch.nn.Module, opt: torch.optim.Optimizer, sched, state: dict) -> None:
    """Load a checkpoint into a model that is already on its training device.

    The model must be moved first: the optimizer casts its saved moments to each parameter's
    device when it loads them, and a model moved afterwards leaves them behind on the CPU
    (resume on CUDA failed at its first step with "found at least two devices").
    """
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])


@torch.no_grad()
def evaluate_arrays(
    model: torch.nn.Module, data: ArrayData, device: torch.device, batch_size: int = 16, names: list[str] | None = None
) -> dict[str, float]:
    """Validation loss and mean metrics at the training resolution."""
    model.eval()
    losses, scores = [], {m: [] for m in METRIC_NAMES}
    for start in range(0, len(data), batch_size):
        x = data.images[start : start + batch_size, None].to(device)
        y = data.masks[start : start + batch_size, None].to(device)
        outputs = None if data.outputs is None else data.outputs[start : start + batch_size]
        logits = select_outputs(model(x, outputs).float(), outputs)
        losses.append(float(dice_bce_loss(logits, y)) * len(x))
        for k, v in binary_metrics(logits > 0, y > 0.5).items():
            scores[k].extend(v.tolist())
    out = {"val_loss": sum(losses) / len(data)}
    out.update({f"val_{k}": float(np.mean(v)) for k, v in scores.items()})
    if names and data.outputs is not None:  # each convention's own Dice: the mean hides a small one
        dice = np.asarray(scores["dice"])
        for i, name in enumerate(names):
            picked = (data.outputs == i).numpy()
            if picked.any():
                out[f"val_dice_{name}"] = float(dice[picked].mean())
    return out


class Trainer:
    def __init__(self, cfg: TrainConfig, progress: Callable[[dict], None] | None = None) -> None:
        self.cfg, self.progress = cfg, progress
        self.out = Path(cfg.output)
        self.device = resolve_device(cfg.device)
        self.distributed = _maybe_init_distributed(self.device)
        self.rank, self.world = _dist_info()
        if self.device.type == "cuda" and self.distributed:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.norm = Normalisation()
        self.stop_requested = False
        self.amp = autocast_dtype(self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)

    # -- set-up ------------------------------------------------------------------
    def _load_data(self) -> tuple[ArrayData, ArrayData, dict]:
        train_pairs, val_pairs = [], []
        overrides = read_case_conventions(self.cfg.case_conventions) if self.cfg.case_conventions else {}
        for spec in self.cfg.data:
            root, convention = split_convention(spec)
            pairs = discover_pairs(root, convention)
            if overrides:
                pairs = tag_conventions(pairs, overrides)
            tr, va = stable_split(pairs, self.cfg.val_fraction, self.cfg.seed)
            train_pairs += tr
            val_pairs += va or tr[:1]
        split = {"train": [f"{p.dataset}/{p.case_id}" for p in train_pairs], "val": [f"{p.dataset}/{p.case_id}" for p in val_pairs]}
        show = self.cfg.show_progress and self.rank == 0
        known = self.cfg.conventions
        return (load_arrays(train_pairs, self.cfg.input_size, self.norm, show, known),
                load_arrays(val_pairs, self.cfg.input_size, self.norm, show, known), split)

    def _build_model(self) -> tuple[UNet, torch.optim.Optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau, RunState]:
        """Model on its device, optimizer and scheduler, from scratch, from --init-from, or resumed."""
        cfg = self.cfg
        model = UNet(cfg.arch())
        last = self.out / LAST_CHECKPOINT
        resuming = cfg.resume and last.is_file()
        if cfg.init_from and not resuming:
            init = load_model(cfg.init_from)
            # the input size may differ: the U-Net is fully convolutional, so a model trained at a
            # low resolution is a good start for a higher one (progressive resizing)
            model.load_state_dict(widened(init.model.state_dict(), init.card, cfg.arch(), cfg.conventions, cfg.init_from))
        model.to(self.device)
        if uses_channels_last(self.device):
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(_param_groups(model, cfg.lr), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.min_lr)
        state = RunState(rows=read_log(self.out / LOG_NAME))
        if resuming:
            saved = load_checkpoint(last)
            restore_training_state(model, opt, sched, saved)
            state = RunState(saved["epoch"], saved["best_dice"], saved["stale_epochs"], state.rows[: saved["epoch"]])
            if self.rank == 0:
                print(f"resuming from {last} after epoch {state.epoch} (best val Dice {state.best:.4f})")
        return model, opt, sched, state

    def _wrap(self, model: UNet) -> torch.nn.Module:
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    # -- one epoch -----------------------------------------------------------------
    def _loader(self, dataset: AugmentedDataset, epoch: int) -> DataLoader:
        cfg = self.cfg
        dataset.epoch = epoch
        gen = torch.Generator().manual_seed(cfg.seed + epoch)
        order = torch.randperm(len(dataset), generator=gen).tolist()
        # pad to a multiple of the world size, as DistributedSampler does: every rank must
        # run the same number of steps or the gradient all-reduce deadlocks
        order = (order * self.world)[: math.ceil(len(order) / self.world) * self.world][self.rank :: self.world]
        workers = cfg.workers if cfg.workers >= 0 else (4 if self.device.type == "cuda" else 0)
        return DataLoader(torch.utils.data.Subset(dataset, order), batch_size=cfg.batch_size, shuffle=False,
                          num_workers=workers, pin_memory=self.device.type == "cuda",
                          drop_last=len(order) > cfg.batch_size and len(order) % cfg.batch_size == 1)

    def _train_epoch(self, net: torch.nn.Module, opt: torch.optim.Optimizer, dataset: AugmentedDataset, epoch: int) -> dict[str, float]:
        """One pass over the training shard; returns the mean loss and metrics."""
        cfg = self.cfg
        loader = self._loader(dataset, epoch)
        net.train()
        sums = {k: 0.0 for k in ("loss", *METRIC_NAMES)}
        seen = 0
        steps = len(loader) if not cfg.max_steps_per_epoch else min(len(loader), cfg.max_steps_per_epoch)
        bar = progress_bar(steps, f"epoch {epoch + 1}/{cfg.epochs}", "batches", disable=not (cfg.show_progress and self.rank == 0), leave=False)
        for step, (x, y, outputs) in enumerate(loader):
            if step >= steps or self.stop_requested:
                break
            loss, logits = train_step(net, x, y, opt, self.scaler, self.amp, self.device, outputs=outputs)
            m = binary_metrics(logits > 0, y.to(self.device) > 0.5)
            sums["loss"] += float(loss) * len(x)
            for k in METRIC_NAMES:
                sums[k] += float(m[k].sum())
            seen += len(x)
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss):.4f}")
            if self.progress:
                self.progress({"epoch": epoch + 1, "epochs": cfg.epochs, "step": step + 1, "steps": steps, "loss": float(loss)})
        bar.close()
        if self.stop_requested:
            raise KeyboardInterrupt
        return {k: v / max(seen, 1) for k, v in sums.items()}

    def _validate(self, model: UNet, sched, val_data: ArrayData, train_row: dict, run: RunState, epoch: int, t0: float) -> tuple[dict, bool]:
        """Score the epoch's model, step the plateau scheduler, log the row; ``t0``: when the epoch began."""
        if self.distributed:
            average_buffers(model)
        val = evaluate_arrays(model, val_data, self.device, names=self.cfg.conventions)
        sched.step(val["val_loss"])
        row = {"epoch": epoch + 1, **train_row, **val, "lr": sched.optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 2)}
        run.rows.append(row)
        run.epoch = epoch + 1
        improved = val["val_dice"] > run.best
        run.best, run.stale = (val["val_dice"], 0) if improved else (run.best, run.stale + 1)
        return row, improved

    def _save(self, model: UNet, opt: torch.optim.Optimizer, sched, run: RunState, split: dict, row: dict, improved: bool) -> None:
        """Best model (when improved), the log and ``last.ckpt``; rank 0 only."""
        if self.rank != 0:
            return
        if improved:
            val = {k: v for k, v in row.items() if k.startswith("val_")}
            save_model(self.out / BEST_DIR, model, self._card(split, val, run.epoch))
        write_log(self.out / LOG_NAME, run.rows)
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "epoch": run.epoch, "best_dice": run.best, "stale_epochs": run.stale, "torch_rng": torch.get_rng_state()}
        with atomic_path(self.out / LAST_CHECKPOINT) as tmp:
            torch.save(state, tmp)
        print(f"epoch {run.epoch}: loss {row['loss']:.4f} val_loss {row['val_loss']:.4f} "
              f"val_dice {row['val_dice']:.4f} lr {row['lr']:.1e} ({row['seconds']:.0f}s){' *' if improved else ''}", flush=True)

    def _card(self, split: dict, metrics: dict, epoch: int) -> ModelCard:
        return ModelCard(
            version=self.cfg.version,
            architecture=self.cfg.arch(),
            input_size=self.cfg.input_size,
            normalisation=self.norm,
            training_data=[str(Path(split_convention(d)[0]).name) for d in self.cfg.data],
            conventions=list(self.cfg.conventions),  # type: ignore[arg-type]
            metrics={"validation_at_input_size": metrics, "epoch": epoch},
            status="trained",
            extra={
                "train_config": {k: v for k, v in asdict(self.cfg).items() if k not in ("extra",)},
                "hardware": f"{describe_device(self.device)}, world size {self.world}",
                "n_train": len(split["train"]),
                "n_val": len(split["val"]),
                **self.cfg.extra,
            },
        )

    def _write_fisher(self, train_data: ArrayData) -> None:
        """The best model's Fisher information on its own training images: what fine-tuning must
        not forget, in a form that ships without the images (see fisher.py)."""
        best = self.out / BEST_DIR
        if not self.cfg.fisher_images or not (best / "card.json").is_file():
            return
        loaded = load_model(best)
        fisher = compute_fisher(loaded.model.to(self.device), train_data, self.device, limit=self.cfg.fisher_images)
        save_fisher(best, fisher, min(len(train_data), self.cfg.fisher_images))

    def _finish(self, model: UNet, train_data: ArrayData) -> Path:
        if self.rank == 0:
            self._write_fisher(train_data)
            try:
                from .curves import plot_curves

                plot_curves(self.out / LOG_NAME, self.out / "curves.png")
            except Exception as exc:  # a missing plot must not fail a finished training
                print(f"could not draw training curves: {exc}")
        self.final_state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        if self.distributed:
            dist.barrier()
        return self.out / BEST_DIR

    # -- the run -------------------------------------------------------------------
    def run(self) -> Path:
        cfg = self.cfg
        seed_everything(cfg.seed)
        self.out.mkdir(parents=True, exist_ok=True)
        train_data, val_data, split = self._load_data()
        if self.rank == 0:
            atomic_write_json(self.out / "split.json", split)
        model, opt, sched, run = self._build_model()
        net = self._wrap(model)
        dataset = AugmentedDataset(train_data, AugmentConfig(hflip=cfg.hflip) if cfg.augment else None, cfg.seed,
                                   {cfg.conventions.index(c): k for c, k in cfg.repeat.items() if c in cfg.conventions})

        previous = signal.getsignal(signal.SIGTERM)
        own_handler = self.rank == 0 and previous in (signal.SIG_DFL, None)
        if own_handler:
            signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop_requested", True))
        try:
            for epoch in range(run.epoch, cfg.epochs):
                t0 = time.perf_counter()
                train_row = self._train_epoch(net, opt, dataset, epoch)
                row, improved = self._validate(model, sched, val_data, train_row, run, epoch, t0)
                self._save(model, opt, sched, run, split, row, improved)
                if run.stale >= cfg.early_stopping:
                    if self.rank == 0:
                        print(f"early stopping: no val Dice gain for {run.stale} epochs")
                    break
        finally:
            if own_handler:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return self._finish(model, train_data)


def train(cfg: TrainConfig, progress: Callable[[dict], None] | None = None) -> Path:
    return Trainer(cfg, progress).run()
