"""The batch thread budget: every worker is one core, and the network's threads never depend on --workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from napari_lung_unet.batch.local import start_workers
from napari_lung_unet.batch.threads import cores, plan


def _threads_here() -> tuple[int, str | None, str | None]:
    return torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"), os.environ.get("MKL_NUM_THREADS")


def test_network_threads_are_the_same_for_every_worker_count() -> None:
    cpu = torch.device("cpu")
    budgets = [plan(n, cpu) for n in (1, 2, 3, 8)]
    assert {b.network_threads for b in budgets} == {1}  # a thread count is part of the masks' bits
    assert not budgets[0].network_in_workers and all(b.network_in_workers for b in budgets[1:])
    one = budgets[0]  # one process: the network thread, plus readers and a writer on the other cores
    assert one.main_threads == 1 and one.loader_threads == max(1, cores() - 1) and one.finisher_threads == 1
    assert all(b.main_threads == 1 and b.loader_threads == b.finisher_threads == 0 for b in budgets[1:])


def test_workers_start_with_one_thread_and_leave_this_process_alone() -> None:
    before = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    with start_workers(2) as pool:
        seen = {pool.submit(_threads_here).result() for _ in range(4)}
    assert seen == {(1, "1", "1")}
    assert {name: os.environ.get(name) for name in before} == before


def _start_early_in_a_fresh_process(argv: list[str]) -> tuple[bool, list[str], bool]:
    """(started?, the command lines of this fresh process's children, whether torch was imported by then)."""
    code = (
        "import json, sys, time, psutil\n"
        "from napari_lung_unet.batch.forkserver import start_early\n"
        f"started = start_early({argv!r})\n"
        "time.sleep(0.3)\n"
        "kids = [' '.join(p.cmdline()) for p in psutil.Process().children()]\n"
        "print(json.dumps([started, kids, 'torch' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    started, kids, torch_here = json.loads(out.stdout.strip().splitlines()[-1])
    return started, kids, torch_here


@pytest.mark.skipif(sys.platform != "linux", reason="the forkserver is Linux's; elsewhere workers are spawned")
def test_predict_with_workers_starts_their_forkserver_before_this_process_imports_torch() -> None:
    started, kids, torch_here = _start_early_in_a_fresh_process(["predict", "in", "-o", "out", "--workers", "2"])
    assert started and not torch_here  # the server imports torch on its own; this process has not yet
    assert any("forkserver" in k for k in kids), kids
    for argv in (["predict", "in", "-o", "out"], ["predict", "in", "-o", "out", "--workers", "1"],
                 ["predict", "--workers", "two"], ["models", "--workers", "2"], [],
                 ["predict", "in", "-o", "out", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"]):
        started, kids, _ = _start_early_in_a_fresh_process(argv)
        assert not started and not kids, argv
