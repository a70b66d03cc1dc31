"""The local pipeline of ``lung-unet predict``: workers load and finish images, the network runs in batches here.

``workers == 1`` is the single-process pipeline: reader threads and one finishing thread around
the network. ``workers > 1`` gives loading (read, pre-process) and finishing (post-process, write)
to that many processes, started from a forkserver that has imported the steps once, while this
process keeps the model and runs the network on every batch, with its usual thread count. The
network sees the same batches with the same threads for any ``workers``, and the steps are
deterministic, so the masks are byte-identical whatever the count.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack

import numpy as np
import torch

from ..nn.predict import Predictor
from . import steps
from .results import Row
from .steps import Failed, Job, Loaded, Settings

Outcome = tuple[Job, "Row | Failed"]


def _init_worker() -> None:
    # each worker is one of ``workers`` busy processes: more torch threads would only oversubscribe the cores
    torch.set_num_threads(1)


def _process_pool(workers: int) -> ProcessPoolExecutor:
    if sys.platform == "linux":
        # forkserver: workers fork from a clean process that imported torch and the steps once (fast
        # starts); plain fork would copy this process's OpenMP threads' state, which can deadlock
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["napari_lung_unet.batch.steps"])
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)


@contextlib.contextmanager
def start_workers(workers: int) -> Iterator[ProcessPoolExecutor]:
    """The worker processes for :func:`run_local`, started now: their start (the forkserver imports
    torch, ~2 s) then overlaps the model's loading instead of delaying the first batch.

    Leaving normally waits for the workers; leaving by an exception (SIGTERM, Ctrl-C, an error)
    kills them at once: the queued images are dropped, exactly as a SIGKILL would drop them.
    """
    pool = _process_pool(workers)
    for _ in range(workers):
        pool.submit(int)  # a no-op per worker: the pool starts processes on demand
    try:
        yield pool
    except BaseException:
        _kill(pool)
        raise
    pool.shutdown(wait=True)


def _kill(pool: ProcessPoolExecutor) -> None:
    # the executor has no public way to stop running work; its process table is the one handle
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()
    for process in processes:
        process.join(timeout=5)


def run_local(
    jobs: list[Job], predictor: Predictor, settings: Settings, workers: int, batch_size: int,
    pool: ProcessPoolExecutor | None = None,
) -> Iterator[Outcome]:
    """Yield ``(job, row or failure)`` for every job: failed reads in input order, the others as they finish.

    ``pool``: workers from :func:`start_workers` (the caller shuts them down); made here when None.
    """
    with ExitStack() as stack:
        if workers == 1:
            loaders: Executor = stack.enter_context(ThreadPoolExecutor(2, thread_name_prefix="load"))
            finishers: Executor = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="finish"))
        else:
            loaders = finishers = pool or stack.enter_context(_process_pool(workers))
        in_flight = batch_size + 2 * workers  # bounds memory: decoded images waiting and masks not yet written
        finishing: deque[tuple[Job, Future[Row | Failed]]] = deque()
        batch: list[tuple[Job, Loaded]] = []

        def run_batch() -> None:
            probs, share = steps.network(predictor, [loaded for _, loaded in batch])
            for (job, loaded), prob in zip(batch, probs):
                loaded.x = np.empty(0, np.float32)  # the finisher does not need the input: do not ship it back
                finishing.append((job, finishers.submit(steps.finish, job, loaded, prob, share, settings)))
            batch.clear()

        def harvest(keep: int) -> Iterator[Outcome]:
            while finishing and (len(finishing) > keep or finishing[0][1].done()):
                job, future = finishing.popleft()
                yield job, _result(future)

        for job, loaded in _ordered(loaders, jobs, settings, window=in_flight):
            if isinstance(loaded, Failed):
                yield job, loaded
                continue
            batch.append((job, loaded))
            if len(batch) >= batch_size:
                run_batch()
                yield from harvest(keep=in_flight)
        if batch:
            run_batch()
        yield from harvest(keep=0)


def _ordered(pool: Executor, jobs: list[Job], settings: Settings, window: int) -> Iterator[tuple[Job, Loaded | Failed]]:
    """Load every job on ``pool``, ``window`` at a time, and yield them in input order (so batches never depend on timing)."""
    pending: deque[tuple[Job, Future[Loaded | Failed]]] = deque()
    for job in jobs:
        pending.append((job, pool.submit(steps.load, job, settings)))
        if len(pending) >= window:
            done, future = pending.popleft()
            yield done, _result(future)
    while pending:
        done, future = pending.popleft()
        yield done, _result(future)


def _result(future: Future[Row | Failed] | Future[Loaded | Failed]) -> Row | Failed | Loaded:
    try:
        return future.result()
    except Exception as exc:  # the worker died (killed, out of memory): this job failed, so did the pool
        return Failed(f"{type(exc).__name__}: {exc}", "")
