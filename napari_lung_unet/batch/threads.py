"""The one thread budget of a local ``lung-unet predict`` run: processes, torch threads and decode threads.

Every setting is decided here, so that no combination oversubscribes the cores:

- On the CPU the network always runs with **one** intra-op thread, wherever it runs. A worker is one
  core's worth of work, so with ``--workers N`` each of the N processes reads, runs the network on
  its own batches and writes, and N busy processes share N cores. The same thread count for every
  worker count is also what keeps the masks byte-identical: torch's CPU kernels are bitwise the same
  for any batch composition but not for another thread count.
- ``--workers 1`` on the CPU: this process runs the network on its one thread while helper threads
  read ahead and write behind (PNG decoding and zlib release the GIL), one core's worth each.
- On a GPU the network stays in this process, which feeds it with one CPU thread, and the workers
  only read and write.
- Worker processes start with OMP/MKL/OpenBLAS limited to one thread, before torch initialises them
  (:mod:`.forkserver`).

Measured in bench/batch_workers.py (docs/benchmarks.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..resources import available_memory, gb

# A worker's memory: peak RSS 317-337 MB reading, segmenting and writing 512² to 3000² X-rays with the
# default model (psutil, predict --workers 2, 2026-12), rounded up for the decoded image and its mask.
WORKER_BYTES = 400 * 2**20


def cores() -> int:
    """Cores this process may use (a container or taskset may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers() -> int:
    """One worker per core, except on 2 cores: there one process (network thread + reader and writer
    threads) keeps ~1.5 cores busy, and 2 workers were 1.36x faster at 3000² but 0.99-1.05x in
    earlier runs under load, with 0.5 GB more memory (bench/batch_workers.py, docs/benchmarks.md):
    not a clear enough win to be the default on a laptop that is also showing napari."""
    n = cores()
    return n if n > 2 else 1


def capped_workers(asked: int) -> tuple[int, str | None]:
    """``asked`` worker processes, or fewer: at most one per core and as many as the free memory holds
    (:data:`WORKER_BYTES` each). Returns the count and a note saying why, when it is capped."""
    n_cores, free = cores(), available_memory()
    by_memory = max(1, free // WORKER_BYTES) if free is not None else asked
    workers = min(asked, n_cores, by_memory)
    if workers == asked:
        return asked, None
    if workers == n_cores and n_cores <= by_memory:
        why = f"this machine gives this run {n_cores} core(s)"
    else:
        why = f"{gb(free or 0)} of memory is free, about {gb(WORKER_BYTES)} per worker"
    return workers, f"note: --workers {asked} capped at {workers}: {why}"


@dataclass(frozen=True)
class Budget:
    workers: int  # processes besides this one (1: none, everything runs here)
    network_in_workers: bool  # each worker runs the network on its own batches
    network_threads: int  # torch intra-op threads of the network, in whichever process runs it
    main_threads: int  # torch intra-op threads of this process
    loader_threads: int  # read-ahead threads in this process (workers == 1)
    finisher_threads: int  # write-behind threads in this process (workers == 1)


def plan(workers: int, device: torch.device) -> Budget:
    """The budget for ``workers`` processes with the network on ``device``."""
    if device.type != "cpu":
        # the accelerator does the network's work; this process only copies batches to it
        return Budget(workers, False, 1, 1, loader_threads=max(1, cores() - 1), finisher_threads=1)
    if workers > 1:
        return Budget(workers, True, 1, 1, loader_threads=0, finisher_threads=0)
    return Budget(1, False, 1, 1, loader_threads=max(1, cores() - 1), finisher_threads=1)


def apply_here(budget: Budget) -> None:
    """Give this process its share of threads (before the first network call)."""
    torch.set_num_threads(budget.main_threads)


def init_worker() -> None:
    """A worker's initializer: one core, so one torch thread (the environment already limits OpenMP)."""
    torch.set_num_threads(1)
