"""Peak memory of ``lung-unet predict`` on the 4020×4892 uint16 PNG (and the other two inputs).

Each run is a fresh CLI process; its peak RSS comes from ``os.wait4`` (the kernel's ru_maxrss for
that one child), so the number covers interpreter, torch, model and all image copies. Target on
the CPU: < 1.5 GB for the 20-Mpx PNG.

    python bench/memory_peak.py [--overlay] [--baseline-src DIR]

``--baseline-src`` runs the same command with another checkout's package first on PYTHONPATH
(``git archive <commit> napari_lung_unet | tar -x -C DIR``), for a before/after in one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish  # noqa: E402
from cli_batch_throughput import lung_unet_command  # noqa: E402
from proposal_latency import BIG, bench_inputs  # noqa: E402

from napari_lung_unet.nn.registry import Registry  # noqa: E402

TARGET_GB = 1.5


def peak_rss(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd``; return its peak resident set size in GB (10⁹ bytes) and its wall time."""
    import time

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()  # drained before waiting, so a chatty child cannot block on a full pipe
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen from waiting again
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.decode(errors='replace')[-3000:]}")
    return usage.ru_maxrss * 1024 / 1e9, time.perf_counter() - t0  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--overlay", action="store_true", help="also measure with --overlay (keeps the full-size image for the picture)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default=None, help="model version or folder (default: the current version)")
    ap.add_argument("--baseline-src", type=Path, default=None, help="another checkout to measure the same way")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()

    inputs = bench_inputs()
    # a folder path, so a baseline checkout runs the same weights rather than its own bundled default
    model = str(Registry().resolve(args.model))
    builds: list[tuple[str, dict[str, str]]] = [("this", dict(os.environ))]
    if args.baseline_src:
        pythonpath = os.pathsep.join([str(args.baseline_src), os.environ.get("PYTHONPATH", "")])
        builds.append((f"baseline {args.baseline_src.name}", {**os.environ, "PYTHONPATH": pythonpath}))
    rows = []
    with tempfile.TemporaryDirectory(prefix="mem_bench_") as tmp:
        for build, env in builds:
            for label, path in inputs.items():
                for overlay in [False, True] if args.overlay else [False]:
                    cmd = lung_unet_command() + ["predict", "--device", args.device, "--model", model, str(path), "-o", str(Path(tmp) / "out")]
                    cmd += ["--overlay"] if overlay else []
                    gb, wall = peak_rss(cmd, env)
                    rows.append((build, label, overlay, gb, wall))
                    print(f"{build:12s} {label:16s} overlay={overlay!s:5s} peak RSS {gb:.2f} GB ({wall:.1f} s)", flush=True)
        # the floor: the same process shape without touching an image
        idle_gb, _ = peak_rss([sys.executable, "-c", "import torch, napari_lung_unet.nn.predict, napari_lung_unet.cli"], dict(os.environ))

    big = next(gb for build, label, overlay, gb, _ in rows if build == "this" and label == BIG and not overlay)
    verdict = "met" if big < TARGET_GB else "missed"
    lines = [
        "Peak RSS of one `lung-unet predict` process per input (os.wait4 ru_maxrss), device "
        f"{args.device}. Python + torch + the CLI's imports alone peak at {idle_gb:.2f} GB.",
        "",
        "| build | input | --overlay | peak RSS (GB) | wall time (s) |",
        "|---|---|---|---|---|",
        *(f"| {b} | {label} | {'yes' if o else 'no'} | {gb:.2f} | {wall:.1f} |" for b, label, o, gb, wall in rows),
        "",
        f"Target < {TARGET_GB} GB for the 4020×4892 PNG: **{verdict}** ({big:.2f} GB).",
    ]
    publish("Peak memory of the CLI (bench/memory_peak.py)", lines, record=not args.no_record)


if __name__ == "__main__":
    main()
