"""A real local Dask cluster for tests: ``dask scheduler`` and ``dask worker`` processes on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_cluster(workdir: Path, nworkers: int = 2) -> Iterator[str]:
    """Start a scheduler and ``nworkers`` single-threaded worker processes; yield the scheduler's address."""
    from distributed import Client

    dask = str(Path(sys.executable).with_name("dask"))
    address = f"tcp://127.0.0.1:{free_port()}"
    common = {"cwd": workdir, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"], **common)]
    try:
        procs.append(subprocess.Popen(
            [dask, "worker", address, "--nworkers", str(nworkers), "--nthreads", "1", "--no-dashboard",
             "--local-directory", str(workdir)], **common,
        ))
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(nworkers, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):  # each in its own process group: the nannies' workers go with them
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
