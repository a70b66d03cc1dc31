"""Shared helpers for benchmarks: machine description, medians, and appending to docs/benchmarks.md."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def machine() -> str:
    import torch

    from napari_lung_unet.nn.device import describe_device

    gpu = f", {describe_device(torch.device('cuda'))}" if torch.cuda.is_available() else ""
    return f"{describe_device(torch.device('cpu'))}, torch {torch.__version__}, {torch.get_num_threads()} threads{gpu}"


def median_time(fn: Callable[[], object], runs: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def publish(title: str, lines: list[str], record: bool) -> None:
    """Print a benchmark's table; with ``record``, also append it under the command that ran it."""
    print("\n".join(lines))
    if record:
        append_markdown(title, " ".join(["python", *sys.argv]), lines)


def append_markdown(title: str, command: str, lines: list[str]) -> None:
    """Append one dated section: the numbers, the machine and the exact command."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = [f"\n### {title} — {stamp}", "", f"Machine: {machine()}  ", f"Command: `{command}`", "", *lines, ""]
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    if not BENCHMARKS_MD.exists():
        BENCHMARKS_MD.write_text("# Benchmarks\n\nEvery section is appended by a script under `bench/`; newest last.\n")
    with open(BENCHMARKS_MD, "a", encoding="utf-8") as fh:
        fh.write("\n".join(block))
    print(f"recorded in {BENCHMARKS_MD}")
