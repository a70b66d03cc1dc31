"""``lung-unet predict --workers N`` against ``--workers 1``: images/s and peak RSS, on real X-rays.

Each round runs every worker count once, in turn, on the same folder (fresh output each time),
so a load that other jobs put on the machine hits all counts alike; the table gives the median
over ``--runs`` rounds and the ratio of medians to ``--workers 1``. Throughput is the CLI's own
summary (images done / seconds from the model loaded to the last row), and wall time covers the
whole process. Peak RSS is sampled every 50 ms over the process tree (psutil): the largest single
worker process, the main process, and the largest sum at one moment. Every run's masks are
hashed and compared with the first run's: the table says whether all were byte-identical.

``--size N`` runs on X-rays the size hospitals store (N×N, 16-bit): the real ones upscaled with
quantum noise added (or, without the data, the package's phantom radiograph upscaled), made once
and cached under ``$TMPDIR/lung-unet-bench``, never in the repository. ``--baseline-src DIR``
measures another checkout's package the same way, interleaved in the same rounds (before → after).

    python bench/batch_workers.py [--images 60] [--runs 3] [--workers 1 2] [--data DIR] [--size 3000]
                                  [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish  # noqa: E402
from cli_batch_throughput import lung_unet_command  # noqa: E402
from proposal_latency import cache_dir  # noqa: E402

from napari_lung_unet.settings import data_dir  # noqa: E402

GB = 1024**3
TARGET = 1.2
REPO = Path(__file__).resolve().parents[1]


def make_folder(folder: Path, n: int, source: Path, size: int) -> str:
    """Fill ``folder`` with ``n`` X-rays; return what they are, for the table."""
    folder.mkdir(parents=True)
    files = sorted(source.glob("*.png"))[:n]
    if not size:
        if len(files) < n:
            raise SystemExit(f"{source} has {len(files)} PNGs, fewer than --images {n}")
        for path in files:
            shutil.copyfile(path, folder / path.name)
        return f"{n} real {source.parent.name} PNGs (as stored)"
    what = f"{source.parent.name} X-rays upscaled" if len(files) >= n else "phantom radiographs upscaled"
    cached = cache_dir() / f"xray_{size}_{'real' if len(files) >= n else 'phantom'}"
    for i in range(n):
        path = cached / f"cxr{i:03d}.png"
        if not path.exists():
            _write_large(path, files[i] if len(files) >= n else None, size, seed=i)
        shutil.copyfile(path, folder / path.name)
    return f"{n} {what} to {size}×{size} 16-bit PNGs with quantum noise ({_mb(folder):.0f} MB in all)"


def _write_large(path: Path, source: Path | None, size: int, seed: int) -> None:
    from napari_lung_unet.images.phantom_radiograph import make_radiograph_phantom
    from napari_lung_unet.images.read import read_xray
    from napari_lung_unet.nn.preprocess import resize
    from napari_lung_unet.store.atomic import atomic_write_png

    grey = read_xray(source).pixels if source else make_radiograph_phantom((512, 512), seed=seed)[0]
    grey = grey.astype(np.float32)
    big = resize(grey, (size, size)).numpy() * (65535.0 / max(float(grey.max()), 1.0))
    big += np.random.default_rng(seed).normal(0.0, 300.0, big.shape).astype(np.float32)  # a detector's noise
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_png(path, np.clip(big, 0, 65535).astype(np.uint16))


def _mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir()) / 1e6


def masks_digest(out: Path) -> str:
    """One hash over every mask the run wrote, by name (results.csv holds timings: left out)."""
    h = hashlib.sha256()
    for path in sorted(out.glob("*.png")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def run_once(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Run ``cmd`` in ``cwd``; return wall seconds, the summary's images/s and peak RSS figures (bytes).

    Not in the repository: a forkserver started with ``python -c`` puts its working folder first on
    sys.path, so the baseline's workers would import this checkout's package.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
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


def builds(baseline: Path | None) -> list[tuple[str, dict[str, str]]]:
    """(label, environment) per package measured: the baseline's first when given, then this checkout's."""
    def env(src: Path) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}

    found = [(f"before ({baseline})", env(baseline))] if baseline else []
    return found + [("after" if baseline else "this checkout", env(REPO))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=60)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, len(os.sched_getaffinity(0))])
    ap.add_argument("--data", type=Path, default=data_dir() / "montgomery" / "images")
    ap.add_argument("--size", type=int, default=0, help="upscale to SIZE×SIZE 16-bit (0: the files as stored)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--baseline-src", type=Path, default=None, help="another checkout's package, measured in the same rounds")
    ap.add_argument("--note", default="", help="a sentence about the machine's state, printed under the table")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()

    load = os.getloadavg()[0]
    packages = builds(args.baseline_src)
    results: dict[tuple[str, int], list[dict[str, float]]] = {(b, n): [] for b, _ in packages for n in args.workers}
    digests: dict[str, set[str]] = {b: set() for b, _ in packages}  # per package: the worker counts must agree
    with tempfile.TemporaryDirectory(prefix="batch_workers_") as tmp:
        folder = Path(tmp) / "in"
        what = make_folder(folder, args.images, args.data, args.size)
        for round_ in range(args.runs):
            for label, env in packages:
                for n in args.workers:  # interleaved: a load that comes and goes hits every variant alike
                    out = Path(tmp) / "out"
                    cmd = lung_unet_command() + [
                        "predict", str(folder), "-o", str(out), "--device", args.device,
                        "--workers", str(n), "--batch-size", str(args.batch_size),
                    ]
                    results[label, n].append(run_once(cmd, env, Path(tmp)))
                    digests[label].add(masks_digest(out))
                    shutil.rmtree(out)
                    print(f"round {round_ + 1}, {label}, --workers {n}: {results[label, n][-1]['ips']:.2f} images/s", flush=True)
    load_end = os.getloadavg()[0]

    def med(key: tuple[str, int], field: str) -> float:
        return statistics.median(r[field] for r in results[key])

    base = args.workers[0]
    lines = [
        f"{what}, device {args.device}, --batch-size {args.batch_size}, median of {args.runs} rounds "
        f"(each round runs every package and worker count once, in turn). "
        f"Load average {load:.1f} at start and {load_end:.1f} at the end on {os.cpu_count()} cores "
        "(a load near or above the core count means other jobs competed for the cores).",
        "",
        "| package | --workers | images/s (summary) | wall time (s) | vs --workers " + str(base) + " | peak RSS main (GB) | peak RSS per worker (GB) | peak RSS total (GB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for label, _ in packages:
        for n in args.workers:
            key = (label, n)
            ratio = med(key, "ips") / med((label, base), "ips")
            worker = f"{med(key, 'worker') / GB:.2f}" if n > 1 else "— (threads)"
            lines.append(
                f"| {label} | {n} | {med(key, 'ips'):.2f} | {med(key, 'wall'):.1f} | {ratio:.2f}× | "
                f"{med(key, 'main') / GB:.2f} | {worker} | {med(key, 'total') / GB:.2f} |"
            )
        best = max(args.workers, key=lambda n: med((label, n), "ips"))
        ratio = med((label, best), "ips") / med((label, base), "ips")
        verdicts.append(f"{label}: best ({best} workers) vs --workers {base} **{ratio:.2f}×** "
                        f"(target ≥ {TARGET}×: {'met' if ratio >= TARGET else 'missed'})")
    same = [f"{label}: " + ("byte-identical" if len(d) == 1 else f"NOT identical ({len(d)} different sets)")
            for label, d in digests.items()]
    lines += ["", "; ".join(verdicts) + ".", f"Masks of every run, for all worker counts: **{'; '.join(same)}**."]
    if args.note:
        lines.append(args.note)
    publish("Batch predict, worker processes (bench/batch_workers.py)", lines, record=not args.no_record)
    if any(len(d) != 1 for d in digests.values()):
        raise SystemExit("masks differ between runs")


if __name__ == "__main__":
    main()
