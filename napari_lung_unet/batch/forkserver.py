"""The worker processes' forkserver, and the one-thread environment they start in. Standard library
only: the command line starts the server from its first line, before it imports torch itself.

``lung-unet predict --workers N`` forks its workers from a forkserver that has imported torch and the
per-image steps once (:mod:`.local`). That import costs ~1.3 s, and the first worker used to wait
for it after this process had spent ~1.8 s on its own imports: on 24 X-rays of 3000² it was a sixth
of the run (bench/batch_workers.py, docs/benchmarks.md). Started before those imports, the server
imports on the other core while this process does.

The server and its workers die with this process (:func:`die_with_parent`): a SIGKILL of the main
process used to leave the server, the workers and the resource tracker running for good, holding the
caller's stdout and stderr open (issue 31 #3).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
from collections.abc import Iterator, Sequence

PRELOAD = ["napari_lung_unet.batch.in_worker", "napari_lung_unet.batch.worker_pool"]  # what every worker needs: torch and the steps
# the libraries that size their own thread pools from the environment when they first load
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
# set to this process's pid while the server starts: the server, seeing its parent named there when it
# imports PRELOAD, ties its life to it (and the workers it forks tie theirs to the server's)
PARENT_ENV = "LUNG_UNET_FORKSERVER_PARENT"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_SET_NAME = 15
server_pid: int | None = None  # in the forkserver and the workers it forks: the server's pid


def context() -> multiprocessing.context.BaseContext:
    """Linux: the forkserver (workers fork from a clean process that imported torch and the steps once;
    plain fork would copy this process's OpenMP threads' state, which can deadlock). Elsewhere: spawn."""
    if sys.platform != "linux":
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # no effect once the server runs: it was started with the same list
    return ctx


@contextlib.contextmanager
def one_thread_environment() -> Iterator[None]:
    """Start processes inside this block: they (and a forkserver started here) inherit one-thread pools.

    The environment is restored afterwards: this process's own libraries are already sized.
    """
    saved = {name: os.environ.get(name) for name in (*THREAD_ENV, PARENT_ENV)}
    os.environ.update({name: "1" for name in THREAD_ENV})
    os.environ[PARENT_ENV] = str(os.getpid())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def start_early(argv: Sequence[str]) -> bool:
    """Start the forkserver now if ``argv`` is a local ``predict`` with ``--workers`` above 1 (on Linux).

    Only a hint read off the raw arguments: anything it cannot read starts nothing, and the command
    line's own parser then reports it. Returns whether the server was started.
    """
    if sys.platform != "linux":
        return False
    sniff = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    sniff.add_argument("command", nargs="?")
    sniff.add_argument("--workers", type=int, default=1)
    sniff.add_argument("--scheduler", default=None)  # a Dask cluster runs the images: no local workers
    try:
        known, _ = sniff.parse_known_args(list(argv))
    except (argparse.ArgumentError, SystemExit):
        return False
    if known.command != "predict" or known.workers <= 1 or known.scheduler:
        return False
    context()
    with one_thread_environment():
        multiprocessing.forkserver.ensure_running()  # returns at once; the server imports PRELOAD on its own core
    return True


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    """The C library, for prctl (loaded once: a worker names itself twice per image)."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def set_process_name(name: str) -> None:
    """Linux: this thread's name as ``ps``, ``top`` and /proc/<pid>/comm show it (15 bytes at most)."""
    if sys.platform == "linux" and (libc := _libc()) is not None and hasattr(libc, "prctl"):
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def die_with_parent(expected_parent: int | None = None) -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies (``PR_SET_PDEATHSIG``).

    ``expected_parent``: the pid the parent had; if it is already gone (it died before the call),
    exit now. Elsewhere: nothing (the pool's own pipes end the workers when they can).
    """
    if sys.platform != "linux":
        return
    libc = _libc()
    if libc is None or not hasattr(libc, "prctl"):  # no prctl in this libc: nothing to tie
        return
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)


def tie_server_to_parent() -> None:
    """Called when PRELOAD is imported: in the forkserver that :func:`one_thread_environment` started
    (its parent's pid is in the environment), tie it to that parent and remember its own pid for the
    workers it forks. Anywhere else (this process, a worker, a user's script) nothing happens."""
    global server_pid
    parent = os.environ.get(PARENT_ENV)
    if server_pid is None and parent and parent == str(os.getppid()):
        die_with_parent(int(parent))
        server_pid = os.getpid()
