"""Batch CLI throughput: ``lung-unet predict`` on a folder of 200 images, against one call per file.

The folder run loads the model once, reads upcoming files on reader threads and writes masks on a
writer thread while the network runs (napari_lung_unet/batch/). The per-file loop pays
interpreter start, imports and model loading every time; to keep the benchmark short it is timed
on a sample (``--sample``, default 20 files) and its mean cost per file is extrapolated to the
whole folder, which the table says. Target: the folder run ≥ 3× faster than the loop.

Images: ``--unique`` distinct 1024×1024 uint16 phantoms (cached), each copied to fill the folder.

    python bench/cli_batch_throughput.py [--images 200] [--sample 20] [--size 1024] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish  # noqa: E402
from proposal_latency import phantom_file  # noqa: E402

TARGET = 3.0


def lung_unet_command() -> list[str]:
    """The installed ``lung-unet`` script of this interpreter, else the same entry point via -m."""
    script = Path(sys.executable).with_name("lung-unet")
    return [str(script)] if script.exists() else [sys.executable, "-m", "napari_lung_unet.cli"]


def make_folder(folder: Path, n: int, unique: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    sources = [phantom_file(f"phantom_{size}_{i}.png", (size, size), 500 + i) for i in range(unique)]
    files = []
    for i in range(n):
        path = folder / f"cxr{i:04d}.png"
        shutil.copyfile(sources[i % unique], path)  # separate files: every one is read and decoded
        files.append(path)
    return files


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--sample", type=int, default=20, help="files timed one call each; the loop is extrapolated from them")
    ap.add_argument("--unique", type=int, default=20, help="distinct phantoms behind the folder")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=4, help="passed to lung-unet predict --batch-size")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()

    load = os.getloadavg()[0]
    base = lung_unet_command() + ["predict", "--device", args.device]
    with tempfile.TemporaryDirectory(prefix="cli_bench_") as tmp:
        files = make_folder(Path(tmp) / "in", args.images, args.unique, args.size)
        batch_s = timed(base + ["--batch-size", str(args.batch_size), str(Path(tmp) / "in"), "-o", str(Path(tmp) / "out_batch")])
        print(f"folder of {len(files)}: {batch_s:.1f} s ({len(files) / batch_s:.2f} images/s)", flush=True)
        sample = files[:: max(1, len(files) // args.sample)][: args.sample]
        per_file = [timed(base + [str(f), "-o", str(Path(tmp) / "out_loop")]) for f in sample]
    mean_file = sum(per_file) / len(per_file)
    loop_s = mean_file * len(files)
    ratio = loop_s / batch_s
    verdict = "met" if ratio >= TARGET else "missed"
    lines = [
        f"{len(files)} PNGs of {args.size}×{args.size} uint16 ({args.unique} distinct phantoms), device {args.device}; "
        f"load average at start {load:.1f} on {os.cpu_count()} cores; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}.",
        "",
        "| run | wall time (s) | images/s |",
        "|---|---|---|",
        f"| `lung-unet predict FOLDER --batch-size {args.batch_size}` (one call) | {batch_s:.1f} | {len(files) / batch_s:.2f} |",
        f"| `lung-unet predict FILE` once per file: {len(sample)} calls timed, mean {mean_file:.2f} s/call, "
        f"extrapolated to {len(files)} | {loop_s:.0f} (extrapolated) | {1 / mean_file:.2f} |",
        "",
        f"Folder run vs per-file loop: **{ratio:.1f}×** (target ≥ {TARGET:.0f}×: {verdict}). The folder run loads the model once, "
        "prefetches reads on 2 threads and writes masks on a writer thread while the network runs.",
    ]
    publish("Batch CLI throughput (bench/cli_batch_throughput.py)", lines, record=not args.no_record)


if __name__ == "__main__":
    main()
