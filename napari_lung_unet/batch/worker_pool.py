"""The worker processes of a local ``lung-unet predict --workers N``: replaced when one dies, and the job it took with it named.

A ``ProcessPoolExecutor`` whose worker dies (the OOM killer, a preemption, a SIGKILL) is broken for
good: every pending future fails and every later ``submit`` raises. A run over 40 images used to end
there, with 33 images given neither a row nor a FAILED line (issue 31 #4). Here each worker marks, in
memory shared with this process, the job it is running; when the pool breaks, :meth:`Workers.replace`
reads which job each dead worker held, starts a fresh pool from the same forkserver, and says which
jobs died with a worker (they fail, with the signal) so the caller can run the others again.

A worker the pool itself ended (it SIGTERMs the survivors once one has died) is not the one that
died: its job is run again rather than failed.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from . import forkserver
from .threads import init_worker

IDLE = -1  # a slot's job token while its worker waits for work
NAME = "lung-unet"  # a worker's name in ps and /proc/<pid>/comm: "lung-unet 12" while it runs job 12, "lung-unet idle" between


class Workers:
    """``n`` worker processes; :meth:`submit` like an executor's, with a job token the worker marks while it runs."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.replaced = 0  # how many times a dead worker's pool was replaced
        self._start()

    def _start(self) -> None:
        ctx = forkserver.context()
        # per worker: its pid and the token of the job it runs (IDLE between jobs). No lock on the
        # slots: a worker killed while holding one would hang this process reading them; each slot
        # has one writer and a 64-bit store is whole. The lock only orders the workers' claims.
        self._slots = ctx.Array("q", 2 * self.n, lock=False)
        claim = ctx.Lock()
        self._pool = ProcessPoolExecutor(self.n, mp_context=ctx, initializer=start_worker, initargs=(self._slots, claim))
        with forkserver.one_thread_environment():  # the forkserver and the workers start with one-thread OpenMP/MKL pools
            for _ in range(self.n):
                self._pool.submit(int)  # a no-op per worker: the pool starts processes on demand

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` in a worker (no job token: its death is not pinned on any job)."""
        return self._pool.submit(fn, *args)

    def submit_job(self, token: int, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` in a worker that marks ``token`` (>= 0) as its job while it runs."""
        return self._pool.submit(run_marked, token, fn, *args)

    def replace(self) -> dict[int, str]:
        """After a worker died: a fresh pool, and ``{token: reason}`` for each job a dead worker was running.

        Survivors the broken pool ended itself (SIGTERM) are not named: their jobs may run again.
        """
        processes = self._processes()
        # The broken pool's own thread SIGTERMs the survivors and joins every worker: wait for it, then read
        # the exit codes it collected. Joining a worker beside it made two readers of the forkserver's one
        # status pipe per worker, and the loser read "exit code 255" for a survivor it had ended (CI, flaky).
        self._pool.shutdown(wait=True, cancel_futures=True)
        held = {self._slots[2 * i]: self._slots[2 * i + 1] for i in range(self.n) if self._slots[2 * i]}
        lost = {}
        for process in processes:
            token = held.get(process.pid, IDLE)
            code = process.exitcode
            if token != IDLE and code is not None and code != -signal.SIGTERM:
                lost[token] = death_reason(code)
        self.replaced += 1
        self._start()
        return lost

    def pids(self) -> list[int]:
        """The process ids of the pool's workers started so far (for a monitor: ps, a test's kill)."""
        return [process.pid for process in self._processes()]

    def _processes(self) -> list[Any]:
        """The pool's worker processes started so far (the executor keeps them in a private dict)."""
        return list((getattr(self._pool, "_processes", None) or {}).values())

    def kill(self) -> None:
        """Stop now: queued work is dropped and running work is killed, as a SIGKILL of the run would."""
        processes = self._processes()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()
        for process in processes:
            process.join(timeout=5)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def death_reason(exitcode: int) -> str:
    """``worker killed (signal 9)`` for a negative exit code (the signal), ``worker exited (code N)`` otherwise."""
    if exitcode < 0:
        return f"worker killed (signal {-exitcode})"
    return f"worker exited (code {exitcode})"


# in a worker: its slot in the shared array
_slot: tuple[Any, int] | None = None


def start_worker(slots: Any, claim: Any) -> None:
    """A worker's initializer: die with the forkserver, one torch thread, and claim a slot to mark jobs in."""
    global _slot
    forkserver.die_with_parent(forkserver.server_pid)
    forkserver.set_process_name(f"{NAME} idle")
    init_worker()
    with claim:
        free = [i for i in range(len(slots) // 2) if slots[2 * i] == 0]
        if free:
            slots[2 * free[0]], slots[2 * free[0] + 1] = os.getpid(), IDLE
            _slot = (slots, free[0])


def run_marked(token: int, fn: Callable[..., Any], *args: Any) -> Any:
    """In a worker: ``fn(*args)`` with ``token`` marked in this worker's slot while it runs."""
    if _slot is None:
        return fn(*args)
    slots, index = _slot
    slots[2 * index + 1] = token
    forkserver.set_process_name(f"{NAME} {token}")  # inside the mark: ps shows the job while it is marked
    try:
        return fn(*args)
    finally:
        forkserver.set_process_name(f"{NAME} idle")
        slots[2 * index + 1] = IDLE
