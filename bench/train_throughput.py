"""Training throughput: the project's training step against a plain eager fp32 loop of the same model.

Two measurements in one run, on the CPU and (when there is one) on the GPU:

1. Steps on preloaded phantom batches: ``training.steps.train_step`` set up as ``lung-unet train``
   sets it up (channels_last on the CPU and CUDA, plus bf16 autocast on CUDA) against a hand-written
   eager fp32 NCHW loop (same model, Adam, Dice+BCE, batch). Target on the GPU: ≥ 1.5× the loop.
2. ``lung-unet train`` itself on a phantom dataset: images/s per epoch from its log.csv
   (the epoch's seconds include augmentation, data loading and the validation pass).

The time to fine-tune on 20 corrections is measured by bench/finetune_levers.py, not here.

    python bench/train_throughput.py [--devices cpu cuda] [--steps 10] [--epoch-images 48]
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import median_time, publish  # noqa: E402

from napari_lung_unet.nn.card import Normalisation  # noqa: E402
from napari_lung_unet.nn.device import autocast_dtype, uses_channels_last  # noqa: E402
from napari_lung_unet.nn.model import UNet  # noqa: E402
from napari_lung_unet.images.phantom import make_phantom  # noqa: E402
from napari_lung_unet.nn.preprocess import prepare_input, resize  # noqa: E402
from napari_lung_unet.settings import HOME_ENV  # noqa: E402
from training.metrics import dice_bce_loss  # noqa: E402
from training.steps import train_step  # noqa: E402
from training.runlog import LOG_NAME, read_log  # noqa: E402
from training.trainer import TrainConfig  # noqa: E402

NO_GPU = "not yet measured (no GPU in this session)"


def phantom_batch(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [make_phantom((2 * size, 2 * size), seed=200 + i) for i in range(n)]
    x = torch.stack([prepare_input(img.astype(np.float32), size, Normalisation()) for img, _ in pairs])[:, None]
    y = torch.stack([(resize((lab > 0).astype(np.float32), (size, size)) > 0.5).float() for _, lab in pairs])[:, None]
    return x, y


def project_step(model: UNet, device: torch.device, cfg: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """train_step with the trainer's own set-up: autocast dtype, GradScaler, the same memory-layout rule."""
    net = model.to(device)
    if uses_channels_last(device):
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    amp = autocast_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        train_step(net, x, y, opt, scaler, amp, device)

    return step


def plain_step(model: UNet, device: torch.device, cfg: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """The reference: what one writes first. Eager, fp32, NCHW, no scaler."""
    net = model.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.to(device), y.to(device)
        loss = dice_bce_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def step_throughput(device: torch.device, cfg: TrainConfig, runs: int) -> list[tuple[str, float]]:
    """Images/s per variant, each the median over ``runs`` steps after 2 warm-up steps."""
    torch.manual_seed(0)
    model = UNet(cfg.arch()).train()
    x, y = phantom_batch(cfg.batch_size * 2, cfg.input_size)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        x, y = x.pin_memory(), y.pin_memory()
    variants: list[tuple[str, Callable[[torch.Tensor, torch.Tensor], None]]] = [
        ("plain eager fp32 loop (reference)", plain_step(copy.deepcopy(model), device, cfg)),
        ("project train_step" + (" (bf16 autocast + channels_last)" if device.type == "cuda" else " (fp32 + channels_last, as the trainer runs it on CPU)"),
         project_step(copy.deepcopy(model), device, cfg)),
    ]
    out = []
    for name, step in variants:
        batches = [(x[i:i + cfg.batch_size], y[i:i + cfg.batch_size]) for i in range(0, len(x), cfg.batch_size)]
        k = [0]

        def one() -> None:
            bx, by = batches[k[0] % len(batches)]
            k[0] += 1
            step(bx, by)
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        rate = cfg.batch_size / median_time(one, runs, warmup=2)
        out.append((name, rate))
        print(f"{device}: {name}: {rate:.1f} images/s", flush=True)
    return out


def cli_epoch_throughput(device: str, n_images: int, epochs: int, cfg: TrainConfig) -> tuple[float, int, float]:
    """Run ``lung-unet train`` on a phantom dataset; return images/s of its last epoch, the train count, and seconds."""
    import imageio.v3 as iio

    from training.data import discover_pairs, stable_split

    with tempfile.TemporaryDirectory(prefix="train_bench_") as tmp:
        root = Path(tmp) / "phantoms"
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        for i in range(n_images):
            image, labels = make_phantom((2 * cfg.input_size, 2 * cfg.input_size), seed=300 + i)
            iio.imwrite(root / "images" / f"case{i:03d}.png", image)
            iio.imwrite(root / "masks" / f"case{i:03d}.png", ((labels > 0) * 255).astype(np.uint8))
        train_pairs, _ = stable_split(discover_pairs(root), cfg.val_fraction, cfg.seed)
        out = Path(tmp) / "run"
        cmd = [str(Path(sys.executable).with_name("lung-unet")), "train", "--data", str(root), "--output", str(out),
               "--epochs", str(epochs), "--device", device, "--no-resume", "--early-stopping", str(epochs + 1)]
        env = {**os.environ, HOME_ENV: str(Path(tmp) / "home")}  # the run must not touch the real registry
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
        last = read_log(out / LOG_NAME)[-1]  # the first epoch carries warm-up (cuDNN autotuning, page faults)
        seconds = float(last["seconds"])
        return len(train_pairs) / seconds, len(train_pairs), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant (median), after 2 warm-ups")
    ap.add_argument("--epoch-images", type=int, default=48, help="phantoms in the lung-unet train dataset (0: skip)")
    ap.add_argument("--epochs", type=int, default=2, help="lung-unet train epochs; the last one is reported")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()

    cfg = TrainConfig(data=[], output="")
    load = os.getloadavg()[0]
    results: dict[str, list[tuple[str, float]]] = {}
    epochs: dict[str, tuple[float, int, float]] = {}
    for name in args.devices:
        if name == "cuda" and not torch.cuda.is_available():
            continue
        device = torch.device(name)
        results[name] = step_throughput(device, cfg, args.steps)
        if args.epoch_images:
            epochs[name] = cli_epoch_throughput(name, args.epoch_images, args.epochs, cfg)
            print(f"{name}: lung-unet train {epochs[name][0]:.1f} images/s ({epochs[name][1]} images in {epochs[name][2]:.1f} s)", flush=True)

    lines = [f"Default architecture (base {cfg.base_channels}, depth {cfg.depth}) at {cfg.input_size}², batch {cfg.batch_size}, Adam; "
             f"median of {args.steps} steps after 2 warm-ups. Load average at start: {load:.1f} on {os.cpu_count()} cores; "
             f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}.",
             "", "| device | variant | images/s | × plain loop |", "|---|---|---|---|"]
    for dev, rows in results.items():
        ref = rows[0][1]
        lines += [f"| {dev} | {name} | {rate:.1f} | {rate / ref:.2f}× |" for name, rate in rows]
        if dev in epochs:
            rate, n, sec = epochs[dev]
            lines.append(f"| {dev} | `lung-unet train`, last of {args.epochs} epochs ({n} train images; includes loading, augmentation, validation) "
                         f"| {rate:.1f} | {rate / ref:.2f}× |")
    if "cuda" in args.devices and "cuda" not in results:
        lines.append(f"| cuda | all variants | {NO_GPU} | |")
    lines += ["", "Target on the GPU: project step ≥ 1.5× the plain loop. Fine-tuning time on 20 corrections: see "
              "the bench/finetune_levers.py section."]
    publish("Training throughput (bench/train_throughput.py)", lines, record=not args.no_record)


if __name__ == "__main__":
    main()
