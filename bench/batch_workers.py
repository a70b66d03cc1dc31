"""``lung-unet predict --workers N`` against ``--workers 1``: images/s and peak RSS, on real 512² X-rays.

Each round runs every worker count once, in turn, on the same folder (fresh output each time),
so a load that other jobs put on the machine hits all counts alike; the table gives the median
over ``--runs`` rounds and the ratio of medians to ``--workers 1``. Throughput is the CLI's own
summary (images done / seconds from the model loaded to the last row), and wall time covers the
whole process. Peak RSS is sampled every 50 ms over the process tree (psutil): the largest single
worker process, the main process, and the largest sum at one moment.

    python bench/batch_workers.py [--images 60] [--runs 3] [--workers 1 2] [--data DIR] [--size 512]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish  # noqa: E402
from cli_batch_throughput import lung_unet_command  # noqa: E402

from napari_lung_unet.settings import data_dir  # noqa: E402

GB = 1024**3
TARGET = 1.25


def make_folder(folder: Path, n: int, source: Path) -> None:
    files = sorted(source.glob("*.png"))[:n]
    if len(files) < n:
        raise SystemExit(f"{source} has {len(files)} PNGs, fewer than --images {n}")
    folder.mkdir(parents=True)
    for path in files:
        shutil.copyfile(path, folder / path.name)


def run_once(cmd: list[str]) -> dict[str, float]:
    """Run ``cmd``; return wall seconds, the summary's images/s and peak RSS figures (bytes)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak_total = peak_worker = peak_main = 0
    while proc.poll() is None:
        try:
            main_rss = root.memory_info().rss
            children = [c.memory_info().rss for c in root.children(recursive=True)]
        except psutil.Error:
            continue
        peak_main = max(peak_main, main_rss)
        peak_worker = max([peak_worker, *children])
        peak_total = max(peak_total, main_rss + sum(children))
        time.sleep(0.05)
    stderr = proc.stderr.read() if proc.stderr else ""
    wall = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
    match = re.search(r"^done (\d+), .* \(([\d.]+) images/s\)", stderr.replace("\r", "\n"), re.M)
    if not match:
        raise RuntimeError(f"no summary line in:\n{stderr[-2000:]}")
    return {"wall": wall, "ips": float(match.group(2)), "main": peak_main, "worker": peak_worker, "total": peak_total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, len(os.sched_getaffinity(0))])
    ap.add_argument("--data", type=Path, default=data_dir() / "montgomery" / "images")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()

    load = os.getloadavg()[0]
    results: dict[int, list[dict[str, float]]] = {n: [] for n in args.workers}
    with tempfile.TemporaryDirectory(prefix="batch_workers_") as tmp:
        folder = Path(tmp) / "in"
        make_folder(folder, args.images, args.data)
        for round_ in range(args.runs):
            for n in args.workers:
                out = Path(tmp) / f"out_{n}_{round_}"
                cmd = lung_unet_command() + [
                    "predict", str(folder), "-o", str(out), "--device", args.device,
                    "--workers", str(n), "--batch-size", str(args.batch_size),
                ]
                results[n].append(run_once(cmd))
                print(f"round {round_ + 1}, --workers {n}: {results[n][-1]['ips']:.2f} images/s", flush=True)
    load_end = os.getloadavg()[0]

    def med(n: int, key: str) -> float:
        return statistics.median(r[key] for r in results[n])

    base = args.workers[0]
    lines = [
        f"{args.images} real {args.data.parent.name} PNGs (512²), device {args.device}, --batch-size {args.batch_size}, "
        f"median of {args.runs} rounds (each round runs every worker count once, in turn). "
        f"Load average {load:.1f} at start and {load_end:.1f} at the end on {os.cpu_count()} cores "
        "(other engineers' jobs share this machine: a load near or above the core count means they competed for it).",
        "",
        "| --workers | images/s (summary) | wall time (s) | vs --workers " + str(base) + " | peak RSS main (GB) | peak RSS per worker (GB) | peak RSS total (GB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in args.workers:
        ratio = med(n, "ips") / med(base, "ips")
        worker = f"{med(n, 'worker') / GB:.2f}" if n > 1 else "— (threads)"
        lines.append(
            f"| {n} | {med(n, 'ips'):.2f} | {med(n, 'wall'):.1f} | {ratio:.2f}× | {med(n, 'main') / GB:.2f} | {worker} | {med(n, 'total') / GB:.2f} |"
        )
    best = max(args.workers, key=lambda n: med(n, "ips"))
    ratio = med(best, "ips") / med(base, "ips")
    lines += ["", f"Best ({best} workers) vs --workers {base}: **{ratio:.2f}×** (target ≥ {TARGET}×: {'met' if ratio >= TARGET else 'missed'})."]
    publish("Batch predict, worker processes (bench/batch_workers.py)", lines, record=not args.no_record)


if __name__ == "__main__":
    main()
