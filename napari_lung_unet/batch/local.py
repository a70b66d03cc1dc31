"""The local pipeline of ``lung-unet predict``: images are read, run through the network in batches and written.

``workers == 1`` is the single-process pipeline: reader threads and one finishing thread around
the network. ``workers > 1`` starts that many processes from a forkserver that has imported the
steps once. On the CPU each worker takes whole batches (read, network, write) on its own core;
on a GPU the network stays here and the workers read and write. How many threads each part gets
is decided in :mod:`.threads`; the network's thread count is the same for any ``workers`` and its
results do not depend on how images are grouped into batches, so the masks are byte-identical
whatever the count.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from ..nn.predict import Predictor
from . import in_worker, steps
from .results import Row
from .steps import Failed, Job, Loaded, Settings
from .threads import Budget, apply_here
from .worker_pool import Workers

Outcome = tuple[Job, "Row | Failed"]
MAX_DEATHS = 3  # worker deaths an image may be in flight at before it fails (the one a worker died running fails at once)


@contextlib.contextmanager
def start_workers(workers: int) -> Iterator[Workers]:
    """The worker processes for :func:`run_local`, started now: their start (the forkserver imports
    torch, ~2 s) then overlaps the model's loading instead of delaying the first batch.

    Leaving normally waits for the workers; leaving by an exception (SIGTERM, Ctrl-C, an error)
    kills them at once: the queued images are dropped, exactly as a SIGKILL would drop them.
    """
    pool = Workers(workers)
    try:
        yield pool
    except BaseException:
        pool.kill()
        raise
    pool.shutdown()


def run_local(
    jobs: list[Job], predictor: Predictor, model_folder: Path, settings: Settings, budget: Budget, batch_size: int,
    pool: Workers | None = None,
) -> Iterator[Outcome]:
    """Yield ``(job, row or failure)`` for every job: failed reads in input order, the others as they finish.

    ``model_folder``: where ``predictor``'s model was loaded from (workers that run the network load it there).
    ``pool``: workers from :func:`start_workers` (the caller shuts them down); made here when None.
    """
    apply_here(budget)
    with ExitStack() as stack:
        if budget.workers > 1 and pool is None:
            pool = stack.enter_context(start_workers(budget.workers))
        if budget.network_in_workers:
            assert pool is not None
            yield from _batches_in_workers(pool, jobs, model_folder, settings, budget.workers)
            return
        if budget.workers == 1:
            loaders: Executor = stack.enter_context(ThreadPoolExecutor(budget.loader_threads, thread_name_prefix="load"))
            finishers: Executor = stack.enter_context(ThreadPoolExecutor(budget.finisher_threads, thread_name_prefix="finish"))
        else:
            assert pool is not None
            loaders = finishers = _Replacing(pool)  # type: ignore[assignment]
        in_flight = batch_size + 2 * budget.workers  # bounds memory: decoded images waiting and masks not yet written
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


def _batches_in_workers(
    pool: Workers, jobs: list[Job], folder: Path, settings: Settings, workers: int,
) -> Iterator[Outcome]:
    """Whole batches (read, network, write) in the workers, two per worker in flight; outcomes in input order.

    A batch here is one image: on one CPU thread the network takes the same time per image at batch
    1, 2 or 4 (0.17-0.26 s at 384², measured), and one-image tasks leave no worker idle at the end
    while another finishes a batch of four 9-Mpx images. ``batch_size`` applies where the network
    runs on an accelerator (in this process).

    A worker that dies (killed, out of memory) costs only the image it was running: that image
    fails with the signal, the pool is replaced and every other image in flight runs again. An
    image in flight at :data:`MAX_DEATHS` deaths fails too, so a pool that keeps breaking still ends.
    """
    queue: deque[int] = deque(range(len(jobs)))  # tokens: indexes into jobs
    pending: deque[tuple[int, Future[list[tuple[Job, Row | Failed]]]]] = deque()
    deaths: dict[int, int] = {}  # token -> deaths it was in flight at
    while queue or pending:
        broken = False
        try:
            while queue and len(pending) < 2 * workers:  # bounds memory and lets a kill drop the queue, as with --workers 1
                token = queue[0]
                pending.append((token, pool.submit_job(token, in_worker.run_batch, [jobs[token]], folder, settings)))
                queue.popleft()
        except BrokenProcessPool:  # a worker died since the last result came back: the pool refuses new work
            broken = True
        if not broken:
            token, future = pending[0]
            try:
                outcomes = future.result()
            except BrokenProcessPool:  # a worker died: below
                broken = True
            except Exception as exc:  # the task itself failed to come back (run_batch never raises)
                outcomes = [(jobs[token], Failed(f"{type(exc).__name__}: {exc}", ""))]
            if not broken:
                pending.popleft()
                yield from outcomes
                continue
        lost = pool.replace()
        again = []
        for token, future in pending:
            if future.done() and not future.cancelled() and future.exception() is None:
                yield from future.result()  # finished before the death
                continue
            deaths[token] = deaths.get(token, 0) + 1
            if token in lost or deaths[token] >= MAX_DEATHS:
                yield jobs[token], Failed(lost.get(token, f"in flight when a worker died, {MAX_DEATHS} times"), "")
            else:
                again.append(token)
        pending.clear()
        queue.extendleft(reversed(again))


class _Replacing:
    """:class:`Workers` as the executor of single steps (``--workers N`` with the network on an accelerator):
    a dead worker fails the steps in flight (:func:`_result`), and the next submit gets a fresh pool."""

    def __init__(self, pool: Workers) -> None:
        self.pool = pool

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        try:
            return self.pool.submit(fn, *args)
        except BrokenProcessPool:
            self.pool.replace()
            return self.pool.submit(fn, *args)


def _ordered(pool: Executor | _Replacing, jobs: list[Job], settings: Settings, window: int) -> Iterator[tuple[Job, Loaded | Failed]]:
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
    except BrokenProcessPool:  # a worker died (killed, out of memory) with this step in flight
        return Failed("a worker process died while this image was in flight", "")
    except Exception as exc:
        return Failed(f"{type(exc).__name__}: {exc}", "")
