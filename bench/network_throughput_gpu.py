"""Network throughput on the GPU: images/s by precision, memory layout and compilation, against the seed U-Net.

At the default model's input size, for batch sizes 1, 8, 32 and 128: fp32, bf16 autocast,
bf16 + channels_last, the same with pinned host input copied in each call, and torch.compile
(falls back to eager, and says so, where it cannot compile). Reports images/s, batch-1 latency
and peak GPU memory for the default model and for the seed's base-64 U-Net in the same run, the
floor for the default model (FLOPs over the measured bf16 matmul rate, activation bytes over the
measured copy bandwidth), and the Dice between bf16 and fp32 masks on phantoms.

Without CUDA it records "not yet measured (no GPU in this session)" and exits; ``--device cpu``
runs the same code on the CPU as a smoke test (nothing recorded unless ``--record`` is given).

    python bench/network_throughput_gpu.py [--batches 1 8 32 128] [--compile-mode reduce-overhead]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import append_markdown, median_time  # noqa: E402

from napari_lung_unet.nn.model import UNet, UNetConfig  # noqa: E402
from napari_lung_unet.images.phantom import make_phantom  # noqa: E402
from napari_lung_unet.nn.preprocess import prepare_input, resize  # noqa: E402
from napari_lung_unet.nn.registry import Registry  # noqa: E402
from training.steps import train_step  # noqa: E402

TITLE = "Network throughput, batched, GPU (bench/network_throughput_gpu.py)"
NO_GPU = "not yet measured (no GPU in this session)"
VARIANTS = ("fp32", "bf16", "bf16 + channels_last", "bf16 + channels_last + pinned H2D", "torch.compile bf16 + channels_last")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_runner(net: torch.nn.Module, variant: str, batch: int, size: int, device: torch.device, compile_mode: str) -> tuple[Callable[[], object], str]:
    """A no-argument callable running one forward of ``batch`` images, and a note (e.g. a compile fallback)."""
    bf16 = variant != "fp32"
    nhwc = "channels_last" in variant
    model = copy.deepcopy(net).eval().to(device)
    if nhwc:
        model = model.to(memory_format=torch.channels_last)
    note = ""
    if variant.startswith("torch.compile"):
        try:
            model = torch.compile(model, mode=compile_mode)
        except Exception as exc:  # no compiler toolchain, unsupported platform: measure eager and say so
            note = f"compile failed ({type(exc).__name__}); eager"
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    x = torch.rand(batch, 1, size, size, device=device).contiguous(memory_format=fmt)
    host = torch.rand(batch, 1, size, size).pin_memory() if "pinned" in variant and device.type == "cuda" else None
    ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext

    def run() -> object:
        with torch.inference_mode(), ctx():
            inp = host.to(device, non_blocking=True).contiguous(memory_format=fmt) if host is not None else x
            out = model(inp)
        sync(device)
        return out

    if variant.startswith("torch.compile") and not note:
        try:
            run()  # compile now, so a failure at first call also falls back instead of aborting the table
        except Exception as exc:
            note = f"compile failed at first call ({type(exc).__name__}); eager"
            model = copy.deepcopy(net).eval().to(device).to(memory_format=torch.channels_last)
    return run, note


def throughput_table(nets: dict[str, torch.nn.Module], size: int, batches: list[int], device: torch.device,
                     runs: int, compile_mode: str, variants: tuple[str, ...]) -> list[dict]:
    rows = []
    for name, net in nets.items():
        for variant in variants:
            for batch in batches:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                row = {"model": name, "variant": variant, "batch": batch}
                try:
                    run, note = make_runner(net, variant, batch, size, device, compile_mode)
                    seconds = median_time(run, runs, warmup=3)
                    row.update(seconds=seconds, images_s=batch / seconds, note=note)
                    if device.type == "cuda":
                        row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                except torch.OutOfMemoryError:
                    row.update(note="out of memory")
                rows.append(row)
                print(f"{name:22s} {variant:36s} batch {batch:4d}: " + (
                    f"{row['images_s']:9.1f} img/s, {row['seconds'] * 1000:8.2f} ms/batch" if "seconds" in row else row["note"]
                ) + (f"  [{row['note']}]" if row.get("note") and "seconds" in row else ""), flush=True)
    return rows


def matmul_rate(device: torch.device, n: int = 8192) -> float:
    """Measured dense bf16 matmul FLOP/s: the compute ceiling the convolutions could reach at best."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)

    def run() -> None:
        torch.mm(a, b)
        sync(device)

    return 2 * n**3 / median_time(run, 5, warmup=2)


def copy_bandwidth(device: torch.device, nbytes: int = 1 << 30) -> float:
    """Measured device-memory copy rate in bytes/s (read + write counted)."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)

    def run() -> None:
        dst.copy_(src)
        sync(device)

    return 2 * nbytes / median_time(run, 5, warmup=2)


def model_cost(net: torch.nn.Module, size: int) -> tuple[float, float]:
    """FLOPs and bytes moved per image in bf16: every leaf layer reads its input and writes its output once."""
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(net).eval().cpu()
    moved = [0]

    def hook(_mod: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        moved[0] += 2 * (sum(t.numel() for t in inputs if isinstance(t, torch.Tensor)) + output.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    x = torch.rand(1, 1, size, size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    for h in handles:
        h.remove()
    return float(counter.get_total_flops()), float(moved[0])


def quick_trained(net: torch.nn.Module, size: int, device: torch.device, steps: int) -> tuple[torch.nn.Module, torch.Tensor]:
    """A copy trained briefly on phantoms, and phantom inputs: untrained nets give all-lung masks and a vacuous Dice."""
    torch.manual_seed(0)
    pairs = [make_phantom((2 * size, 2 * size), seed=100 + i) for i in range(24)]
    norm = Registry().load().card.normalisation
    x = torch.stack([prepare_input(img.astype(np.float32), size, norm) for img, _ in pairs])[:, None]
    y = torch.stack([(resize((lab > 0).astype(np.float32), (size, size)) > 0.5).float() for _, lab in pairs])[:, None]
    model = copy.deepcopy(net).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    amp = torch.bfloat16 if device.type == "cuda" else None
    for step in range(steps):
        idx = torch.randint(0, 16, (8,))  # the first 16 train; the last 8 are held out for the Dice
        train_step(model, x[idx], y[idx], opt, scaler, amp, device)
    return model.eval(), x[16:]


def bf16_dice(model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> tuple[float, float, float]:
    """Mean Dice between bf16 and fp32 masks, the largest probability difference, and the mask's lung fraction."""
    x = x.to(device)
    with torch.inference_mode():
        p32 = torch.sigmoid(model(x))
        with torch.autocast(device.type, dtype=torch.bfloat16):
            p16 = torch.sigmoid(model(x.contiguous(memory_format=torch.channels_last)).float())
    m32, m16 = p32 > 0.5, p16 > 0.5
    inter = (m32 & m16).flatten(1).sum(1).double()
    total = (m32.flatten(1).sum(1) + m16.flatten(1).sum(1)).double()
    dice = torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))
    return float(dice.mean()), float((p32 - p16).abs().max()), float(m32.float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke test")
    ap.add_argument("--compile-mode", default="reduce-overhead", choices=["reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", "default"])
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--train-steps", type=int, default=300, help="phantom training steps for the bf16-vs-fp32 Dice")
    ap.add_argument("--model", default=None, help="model version or folder (default: the current version)")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--record", action="store_true", help="record a --device cpu smoke run too")
    args = ap.parse_args()
    command = " ".join(["python", *sys.argv])

    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"GPU throughput: {NO_GPU}")
        if not args.no_record:
            append_markdown(TITLE, command, [f"GPU throughput, batch-1 latency, peak memory, floor and bf16 Dice: **{NO_GPU}**."])
        return
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    loaded = Registry().load(args.model)
    size = loaded.card.input_size
    nets = {f"default `{loaded.card.version}`": loaded.model, "seed U-Net (base 64)": UNet(UNetConfig.seed())}
    variants = tuple(v for v in VARIANTS if not (args.no_compile and v.startswith("torch.compile")))
    variants = tuple(v for v in variants if device.type == "cuda" or "pinned" not in v)
    rows = throughput_table(nets, size, args.batches, device, args.runs, args.compile_mode, variants)

    flops, moved = model_cost(loaded.model, size)
    rate, bandwidth = (matmul_rate(device), copy_bandwidth(device)) if device.type == "cuda" else (float("nan"), float("nan"))
    floor_s = max(flops / rate, moved / bandwidth) if device.type == "cuda" else float("nan")
    default_name = next(iter(nets))
    best = max((r for r in rows if r["model"] == default_name and "images_s" in r), key=lambda r: r["images_s"])
    t0 = time.perf_counter()
    trained, held_out = quick_trained(loaded.model, size, device, args.train_steps)
    dice, max_diff, lung = bf16_dice(trained, held_out, device)
    print(f"bf16 vs fp32: Dice {dice:.5f}, max |Δp| {max_diff:.4f} (model trained {args.train_steps} steps in {time.perf_counter() - t0:.0f} s)")

    def cell(r: dict) -> str:
        return f"{r['images_s']:,.0f}" if "images_s" in r else r.get("note", "")

    lines = [f"Device `{device}`{' (CPU smoke test, not the GPU numbers)' if device.type != 'cuda' else ''}; input {size}²; median of {args.runs} runs after 3 warm-ups; "
             f"compile mode `{args.compile_mode}`. Images/s by batch size:", ""]
    lines += ["| model | variant | " + " | ".join(f"batch {b}" for b in args.batches) + " | batch-1 latency (ms) | peak GPU memory at largest batch (GiB) | note |",
              "|---|---|" + "---|" * len(args.batches) + "---|---|---|"]
    for name in nets:
        for variant in variants:
            cells = [r for r in rows if r["model"] == name and r["variant"] == variant]
            one = next((r for r in cells if r["batch"] == 1 and "seconds" in r), None)
            peak = next((f"{r['peak_gib']:.2f}" for r in reversed(cells) if "peak_gib" in r), "n/a")
            notes = "; ".join(sorted({r["note"] for r in cells if r.get("note")}))
            latency = f"{one['seconds'] * 1000:.2f}" if one else "n/a"
            lines.append(f"| {name} | {variant} | " + " | ".join(cell(r) for r in cells) + f" | {latency} | {peak} | {notes} |")
    lines += [
        "",
        f"Floor for the default model: {flops / 1e9:.2f} GFLOP and ~{moved / 2**20:.0f} MiB of bf16 activations per image; "
        f"measured bf16 matmul {rate / 1e12:.0f} TFLOP/s and copy bandwidth {bandwidth / 1e9:.0f} GB/s give "
        f"{flops / rate * 1e6:.1f} µs (compute) and {moved / bandwidth * 1e6:.1f} µs (memory) per image, a floor of "
        f"{1 / floor_s:,.0f} images/s. Best measured: {best['images_s']:,.0f} images/s ({best['variant']}, batch {best['batch']}), "
        f"{best['images_s'] * floor_s * 100:.0f}% of the floor." if device.type == "cuda" else
        f"Floor: {flops / 1e9:.2f} GFLOP and ~{moved / 2**20:.0f} MiB of bf16 activations per image (rates are measured on a GPU only).",
        "",
        f"bf16 autocast vs fp32 on {len(held_out)} held-out phantoms (default architecture trained {args.train_steps} steps on phantoms, "
        f"lung fraction {lung:.2f}): mask Dice **{dice:.4f}**, largest probability difference {max_diff:.4f}"
        + (" (vacuous: the quick model does not segment yet; raise --train-steps)." if not 0.05 < lung < 0.8 else "."),
        "",
        "Targets on an H100: ≥ 10,000 images/s at 256² (or ≥ 3,000 at 512²), batch-1 network latency ≤ 3 ms.",
    ]
    print("\n".join(lines))
    if not args.no_record and (device.type == "cuda" or args.record):
        append_markdown(TITLE, command, lines)


if __name__ == "__main__":
    main()
