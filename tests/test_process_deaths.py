"""Batch processes that die, die alone (issue 31 #3, #4): real ``lung-unet predict --workers 2`` runs, real SIGKILLs.

- A worker SIGKILLed mid-run costs only its own image (a failed row that names the signal); the pool is
  replaced and every other input still gets its row.
- The main process SIGKILLed takes the forkserver, the workers and the resource tracker with it within
  seconds, and the caller's stdout and stderr reach their end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import psutil
import pytest
import torch
from concurrent.futures.process import BrokenProcessPool

from napari_lung_unet.batch.local import run_local, start_workers
from napari_lung_unet.batch.pipeline import plan_outputs
from napari_lung_unet.batch.results import RESULTS_NAME, read_rows
from napari_lung_unet.batch.steps import Failed, Settings
from napari_lung_unet.batch.threads import plan
from napari_lung_unet.batch.worker_pool import NAME, Workers
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.nn.registry import Registry

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; PR_SET_PDEATHSIG is Linux's")


def _lung_unet() -> list[str]:
    exe = Path(sys.executable).with_name("lung-unet")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "napari_lung_unet.cli"]


def _inputs(folder: Path, n: int, side: int) -> list[Path]:
    """``n`` copies of one ``side``² phantom X-ray: big enough that a worker spends most of its time on an image."""
    folder.mkdir()
    data = iio.imwrite("<bytes>", make_phantom((side, side), seed=2, dtype=np.uint8)[0], extension=".png")
    paths = [folder / f"c{i:02d}.png" for i in range(n)]
    for path in paths:
        path.write_bytes(data)
    return paths


def _wait(condition, seconds: float, what: str) -> None:  # noqa: ANN001 - any callable returning truth
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.02)


def _workers(main: psutil.Process) -> list[psutil.Process]:
    """The pool's workers: the forkserver's children."""
    servers = [p for p in main.children() if any("forkserver" in part for part in _cmdline(p))]
    return [child for server in servers for child in server.children()]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def _running_an_image(worker: psutil.Process) -> bool:
    """Its name says so: "lung-unet 7" while it runs image 7, "lung-unet idle" between images."""
    try:
        name = Path(f"/proc/{worker.pid}/comm").read_text().strip()
    except OSError:
        return False
    return name.startswith(NAME) and name.rsplit(" ", 1)[-1].isdigit()


def _kill_mid_image(workers: list[psutil.Process]) -> psutil.Process | None:
    """SIGKILL a worker while it runs an image; stopped first, so the name read is the one it dies with."""
    for worker in workers:
        if not _running_an_image(worker):
            continue
        try:
            worker.send_signal(signal.SIGSTOP)
            if _running_an_image(worker):
                worker.send_signal(signal.SIGKILL)
                return worker
            worker.send_signal(signal.SIGCONT)
        except psutil.Error:
            pass
    return None


def test_a_worker_killed_mid_run_costs_only_its_own_image(tmp_path: Path, tiny_model_dir: Path) -> None:
    inputs = _inputs(tmp_path / "in", 16, 1000)
    out = tmp_path / "out"
    command = [*_lung_unet(), "predict", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_model_dir),
               "--device", "cpu", "--workers", "2"]
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
    try:
        main = psutil.Process(proc.pid)
        _wait(lambda: len(read_rows(out / RESULTS_NAME)) >= 3 or proc.poll() is not None, 120, "three rows")
        assert proc.poll() is None, "the run ended before a worker could be killed"
        killed: list[psutil.Process] = []
        _wait(lambda: killed or killed.extend(filter(None, [_kill_mid_image(_workers(main))])), 60, "a worker inside an image")
        rows_at_kill = len(read_rows(out / RESULTS_NAME))
        assert rows_at_kill < len(inputs) - 2, "the kill should land mid-run"
        assert proc.wait(timeout=180) == 1  # one image failed
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    rows = read_rows(out / RESULTS_NAME)
    assert sorted(rows) == sorted(str(p) for p in inputs), stderr  # every input has its row
    failed = {k: r for k, r in rows.items() if r["status"] != "ok"}
    assert len(failed) == 1, failed  # only the image the dead worker was running
    assert [r["error"] for r in failed.values()] == ["worker killed (signal 9)"]
    summary = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("done ")]
    assert summary and summary[0].startswith(f"done {len(inputs) - 1}, skipped 0, failed 1 "), stderr
    assert "FAILED" in stderr and "worker killed (signal 9)" in stderr
    masks = sorted(Path(r["output"]).name for r in rows.values() if r["status"] == "ok")
    assert len(masks) == len(inputs) - 1
    assert sorted(p.name for p in out.iterdir()) == sorted([RESULTS_NAME, *masks])  # no temp file left


def test_the_main_process_sigkilled_takes_every_child_with_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    _inputs(tmp_path / "in", 12, 800)
    out = tmp_path / "out"
    command = [*_lung_unet(), "predict", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_model_dir),
               "--device", "cpu", "--workers", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # the caller's pipes
    children: list[psutil.Process] = []
    try:
        main = psutil.Process(proc.pid)
        _wait(lambda: len(read_rows(out / RESULTS_NAME)) >= 2 or proc.poll() is not None, 120, "two rows")
        assert proc.poll() is None, "the run ended before it could be killed"
        children = main.children(recursive=True)
        assert len(children) >= 4, [_cmdline(c) for c in children]  # resource tracker, forkserver, two workers
        os.kill(proc.pid, signal.SIGKILL)  # the main process alone, not its group
        proc.wait(timeout=10)
        _wait(lambda: not _alive(children), 5, "the children to die with the main process")
        proc.communicate(timeout=5)  # nothing holds the caller's stdout and stderr open any more
    finally:
        for child in _alive(children):
            child.kill()
        if proc.poll() is None:
            proc.kill()


def _refuses_work(pool: Workers) -> bool:
    try:
        pool.submit(int)
    except BrokenProcessPool:
        return True
    return False


def test_a_worker_that_died_between_images_costs_no_image(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The race CI met once: a worker dies after one result came back and before the next image is
    handed out, so the pool refuses new work. No image was in flight on it: every image still gets its mask."""
    inputs = _inputs(tmp_path / "in", 6, 200)
    loaded = Registry().load(str(tiny_model_dir))
    predictor = Predictor(loaded, device="cpu")
    settings = Settings(output=tmp_path / "out", card=loaded.card, convention=loaded.card.default_convention)
    settings.output.mkdir()
    jobs, _ = plan_outputs(inputs, settings.output, overlay=False)
    with start_workers(2) as pool:
        _wait(lambda: len(pool.pids()) == 2, 60, "two workers")
        psutil.Process(pool.pids()[0]).kill()
        _wait(lambda: _refuses_work(pool), 30, "the pool to notice its dead worker")
        outcomes = list(run_local(jobs, predictor, loaded.path, settings, plan(2, torch.device("cpu")), 1, pool))
    assert sorted(job.path for job, _ in outcomes) == sorted(inputs)
    assert [o for _, o in outcomes if isinstance(o, Failed)] == []
    assert pool.replaced == 1
    assert sorted(p.name for p in settings.output.iterdir()) == sorted(p.name for p in inputs)  # the masks, no temp file
