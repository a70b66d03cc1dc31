"""``lung-unet predict`` on real archives (issue 21 #3, #5, #8, #12, #13, #14): file names the OS gives as bytes,
two runs into one folder, SIGTERM with worker processes, a results.csv that a user edited or that is garbage.
Real files, real processes and real signals throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

from napari_lung_unet.batch.results import RESULTS_NAME, read_rows
from napari_lung_unet.cli import main
from napari_lung_unet.images.phantom import make_phantom

LONG = b"x" * 236 + b".png"  # a 240-character file name: the mask fits the 255-byte limit, a temp name with its whole name would not
ODD_NAMES = [b"plain.png", b"caf\xf6.png", LONG, b"two\nlines.png"]


def _lung_unet() -> list[str]:
    exe = Path(sys.executable).with_name("lung-unet")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "napari_lung_unet.cli"]


def _write(folder: Path, names: list[bytes], side: int = 96) -> list[bytes]:
    """Phantom X-rays under raw byte names (Linux takes any bytes but / and NUL); returns their full paths as bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    data = iio.imwrite("<bytes>", make_phantom((side, side), seed=1, dtype=np.uint8)[0], extension=".png")
    paths = [os.path.join(os.fsencode(folder), name) for name in names]
    for path in paths:
        with open(path, "wb") as handle:
            handle.write(data)
    return paths


def _summary(stderr: str) -> str:
    (line,) = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("done ")]
    return line


@pytest.mark.skipif(sys.platform != "linux", reason="file names as raw bytes: Linux file systems")
def test_odd_file_names_each_get_their_row_and_a_rerun_counts_them_done(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture,
) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    _write(inputs, ODD_NAMES)
    with open(os.path.join(os.fsencode(inputs), b"broken\xff.png"), "wb") as handle:
        handle.write(b"not a PNG")  # an unreadable file with an odd name: a FAILED row of its own
    command = ["predict", str(inputs), "-o", str(out), "--model", str(tiny_model_dir), "--device", "cpu", "--overlay"]

    assert main(command) == 1  # the broken file failed; everything readable was done
    assert _summary(capsys.readouterr().err).startswith("done 4, skipped 0, failed 1 ")
    table = pd.read_csv(out / RESULTS_NAME)  # plain UTF-8 CSV, whatever the names held
    assert len(table) == 5 and sorted(table["status"]) == ["failed", "ok", "ok", "ok", "ok"]
    names = {os.fsencode(p.name) for p in out.iterdir()}
    for name in ODD_NAMES:  # each mask and overlay under the input's own name
        stem = name[: -len(b".png")]
        assert {stem + b".png", stem + b"_overlay.png"} <= names
    assert not [n for n in names if n.startswith(b".")]  # no temp file left behind
    keys = set(table["input"])
    assert len(keys) == 5 and f"{inputs}/caf\\xf6.png" in keys and f"{inputs}/two\\nlines.png" in keys

    assert main(command) == 1  # the re-run: only the broken file is tried again
    assert _summary(capsys.readouterr().err).startswith("done 0, skipped 4, failed 1 ")
    assert len(pd.read_csv(out / RESULTS_NAME)) == 5


def test_a_second_run_into_a_busy_output_folder_refuses_and_no_row_is_lost(tmp_path: Path, tiny_model_dir: Path) -> None:
    first, second, out = tmp_path / "first", tmp_path / "second", tmp_path / "out"
    _write(first, [f"a{i:02d}.png".encode() for i in range(40)], side=256)
    _write(second, [f"b{i:02d}.png".encode() for i in range(12)])
    base = [*_lung_unet(), "predict", "-o", str(out), "--model", str(tiny_model_dir), "--device", "cpu"]
    running = subprocess.Popen([*base, str(first)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(read_rows(out / RESULTS_NAME)) < 2 and running.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        running.send_signal(signal.SIGSTOP)  # mid-run, for as long as the second run takes: no race in this test
        try:
            other = subprocess.run([*base, str(second)], capture_output=True, text=True, timeout=300)
        finally:
            running.send_signal(signal.SIGCONT)
        assert running.wait(timeout=300) == 0, running.stderr.read() if running.stderr else ""
    finally:
        if running.poll() is None:
            running.kill()

    assert other.returncode == 1
    (line,) = other.stderr.strip().splitlines()
    assert line == f"error: {out}: another lung-unet predict is writing into this folder; wait for it to finish or choose another -o"
    masks = sorted(p.name for p in out.glob("*.png"))
    rows = pd.read_csv(out / RESULTS_NAME)
    assert len(masks) == 40 and sorted(Path(p).name for p in rows["output"]) == masks  # one row per mask


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, from /proc (the forkserver, its workers, the resource tracker)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":  # a zombie has finished; only its parent's wait is missing
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_sigterm_during_a_run_with_two_workers_stops_every_child(tmp_path: Path, tiny_model_dir: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    _write(inputs, [f"c{i:02d}.png".encode() for i in range(60)], side=512)
    command = [*_lung_unet(), "predict", str(inputs), "-o", str(out), "--model", str(tiny_model_dir),
               "--device", "cpu", "--workers", "2", "--batch-size", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while len(read_rows(out / RESULTS_NAME)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        children = _descendants(proc.pid)
        assert len(children) >= 3, "the forkserver and two workers should be running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 5
        while _descendants_alive(children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _descendants_alive(children), "worker processes outlived the SIGTERM by 5 s"
        assert proc.stderr is not None and proc.stderr.read().strip().endswith("terminated")
    finally:
        for pid in _descendants_alive(children):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()

    # what is left is what a SIGKILL leaves: the next run does the rest and leaves no temp file
    done_before = len(read_rows(out / RESULTS_NAME))
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert _summary(result.stderr).startswith(f"done {60 - done_before}, skipped {done_before}, failed 0 ")
    assert sorted(p.name for p in out.iterdir()) == sorted([RESULTS_NAME, *(f"c{i:02d}.png" for i in range(60))])


def _descendants_alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if state[state.rindex(")") + 2] != "Z":
            alive.add(pid)
    return alive


def test_a_column_the_user_added_is_kept_and_nothing_is_redone(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture,
) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    _write(inputs, [b"a.png", b"b.png"])
    command = ["predict", str(inputs), "-o", str(out), "--model", str(tiny_model_dir), "--device", "cpu"]
    assert main(command) == 0
    table = pd.read_csv(out / RESULTS_NAME)
    table.insert(3, "reviewer", ["dr. a", "dr. b"])  # the user's own column, in the middle
    table.to_csv(out / RESULTS_NAME, index=False)
    _write(inputs, [b"c.png"])
    capsys.readouterr()

    assert main(command) == 0
    err = capsys.readouterr().err
    assert _summary(err).startswith("done 1, skipped 2, failed 0 ") and "note:" not in err
    after = pd.read_csv(out / RESULTS_NAME, keep_default_na=False).set_index("input")
    assert list(after.columns)[2] == "reviewer"  # where the user put it
    assert after.loc[str(inputs / "a.png"), "reviewer"] == "dr. a" and after.loc[str(inputs / "b.png"), "reviewer"] == "dr. b"
    assert after.loc[str(inputs / "c.png"), "reviewer"] == "" and after.loc[str(inputs / "c.png"), "status"] == "ok"


@pytest.mark.parametrize("garbage", [b"\x89PNG\r\n\x1a\n\x00\x00binary", b"name,age\nann,3\n", b"input,output\n\"unclosed\n"])
def test_a_garbage_results_table_is_kept_aside_with_a_note(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture, garbage: bytes,
) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    _write(inputs, [b"a.png"])
    out.mkdir()
    (out / RESULTS_NAME).write_bytes(garbage)

    assert main(["predict", str(inputs), "-o", str(out), "--model", str(tiny_model_dir), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    (note,) = [line for line in err.splitlines() if line.startswith("note:")]
    assert f"{out / RESULTS_NAME} is not" in note and "copied to results.csv.unused; its inputs are done again" in note
    assert (out / "results.csv.unused").read_bytes() == garbage  # nothing the user had is lost
    assert len(pd.read_csv(out / RESULTS_NAME)) == 1
