"""``lung-unet predict`` at archive scale: worker processes, results.csv, resume after a real SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

from napari_lung_unet.cli import main
from napari_lung_unet.batch.results import FIELDS, RESULTS_NAME, read_rows


def _lung_unet() -> list[str]:
    exe = Path(sys.executable).with_name("lung-unet")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "napari_lung_unet.cli"]


def _xrays(real_data: Path, folder: Path, n: int) -> list[Path]:
    """``n`` real 512² Montgomery X-rays copied into ``folder``."""
    folder.mkdir()
    sources = sorted((real_data / "montgomery" / "images").glob("*.png"))[:n]
    return [Path(shutil.copy(src, folder / src.name)) for src in sources]


def _summary(stderr: str) -> str:
    (line,) = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("done ")]
    return line


def _masks(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_masks_are_byte_identical_for_any_worker_count(real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inputs = tmp_path / "in"
    files = _xrays(real_data, inputs, 4)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        assert main(["predict", str(inputs), "-o", str(out), "--device", "cpu", "--workers", str(workers), "--batch-size", "4"]) == 1
        assert _summary(capsys.readouterr().err).startswith(f"done {len(files)}, skipped 0, failed 1 in ")
        runs[workers] = out
    masks = _masks(runs[1])
    assert len(masks) == len(files)
    assert _masks(runs[2]) == masks

    table = pd.read_csv(runs[2] / RESULTS_NAME)  # pandas without options
    assert list(table.columns) == FIELDS and len(table) == len(files) + 1
    ok = table[table.status == "ok"]
    assert (ok.right_lung_px > 10_000).all() and (ok.left_lung_px > 10_000).all()
    assert ok.right_lung_cm2.isna().all()  # PNGs state no pixel spacing
    assert ok.confidence.between(0, 1).all() and ok.model_version.nunique() == 1 and (ok.seconds > 0).all()
    (failed,) = table[table.status == "failed"].itertuples()
    assert failed.input == str(inputs / "broken.png") and isinstance(failed.error, str) and pd.isna(failed.output)
    first = pd.read_csv(runs[1] / RESULTS_NAME).set_index("input")
    assert (first.loc[ok.input, "mask_sha256"].values == ok.mask_sha256.values).all()


def test_rerun_skips_checked_outputs_and_repairs_a_torn_table(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    from napari_lung_unet.images.phantom import make_phantom

    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for i in range(5):
        iio.imwrite(inputs / f"c{i}.png", make_phantom((96 + 8 * i, 80), seed=i)[0])
    args = ["predict", str(inputs), "-o", str(out), "--model", str(tiny_model_dir), "--workers", "2"]
    assert main(args) == 0
    capsys.readouterr()
    before = _masks(out)

    (out / "c1.png").write_bytes(before["c1.png"][:-20])  # a damaged mask is not complete
    (out / "c3.png").unlink()  # nor a missing one
    (out / ".c4.png.abcd1234.tmp.png").write_bytes(b"left by a killed writer")
    with open(out / RESULTS_NAME, "ab") as table:
        table.write(b"/somewhere/else.png,/x.png,o")  # the line a kill cut short
    assert main(args) == 0
    assert _summary(capsys.readouterr().err).startswith("done 2, skipped 3, failed 0 ")
    assert _masks(out) == before and not list(out.glob(".*"))
    assert sorted(read_rows(out / RESULTS_NAME)) == sorted(str(p) for p in inputs.glob("*.png"))
    assert len(pd.read_csv(out / RESULTS_NAME)) == 5

    assert main([*args, "--overwrite"]) == 0
    assert _summary(capsys.readouterr().err).startswith("done 5, skipped 0, failed 0 ")
    assert len(pd.read_csv(out / RESULTS_NAME)) == 5  # one row per input, the newest


@pytest.mark.slow
def test_sigkill_of_the_process_group_leaves_no_partial_mask_and_resume_does_the_rest(real_data: Path, tmp_path: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    files = _xrays(real_data, inputs, 10)
    command = [*_lung_unet(), "predict", str(inputs), "-o", str(out), "--device", "cpu", "--workers", "2", "--batch-size", "2"]
    # its own session and process group, as a shell job: the kill takes the forkserver and the workers too
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(read_rows(out / RESULTS_NAME)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)  # the workers are gone with the group; let the kernel reap them

    done_before = read_rows(out / RESULTS_NAME)
    assert 2 <= len(done_before) < len(files), "the kill should land mid-run"
    pd.read_csv(out / RESULTS_NAME)  # never corrupted
    for mask in out.glob("*.png"):  # only whole masks carry the final name
        assert iio.imread(mask).shape == (512, 512)

    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = _summary(result.stderr)
    skipped = int(summary.split("skipped ")[1].split(",")[0])
    assert skipped >= len(done_before) and summary.startswith(f"done {len(files) - skipped}, ")  # only the rest was redone
    rows = read_rows(out / RESULTS_NAME)
    assert len(rows) == len(files) and {r["status"] for r in rows.values()} == {"ok"}
    assert sorted(p.name for p in out.iterdir()) == sorted([RESULTS_NAME, *(f.name for f in files)])  # no temp files left
    for mask in out.glob("*.png"):
        assert iio.imread(mask).shape == (512, 512)


@pytest.fixture(scope="module")
def dask_scheduler(tmp_path_factory: pytest.TempPathFactory) -> str:
    pytest.importorskip("distributed", reason="the [cluster] extra is not installed")
    from dask_cluster import local_cluster  # pytest puts tests/ on sys.path

    with local_cluster(tmp_path_factory.mktemp("dask")) as address:
        yield address


@pytest.mark.slow
def test_a_dask_cluster_writes_what_a_local_run_writes(
    real_data: Path, tmp_path: Path, dask_scheduler: str, capsys: pytest.CaptureFixture
) -> None:
    inputs = tmp_path / "in"
    files = _xrays(real_data, inputs, 3)
    (inputs / "broken.png").write_bytes(b"not a png")
    local, remote = tmp_path / "local", tmp_path / "cluster"
    common = ["--device", "cpu", "--batch-size", "2"]
    assert main(["predict", str(inputs), "-o", str(local), "--workers", "1", *common]) == 1
    capsys.readouterr()
    assert main(["predict", str(inputs), "-o", str(remote), "--scheduler", dask_scheduler, *common]) == 1
    assert _summary(capsys.readouterr().err).startswith(f"done {len(files)}, skipped 0, failed 1 ")
    assert _masks(remote) == _masks(local) and len(_masks(local)) == len(files)
    ours, theirs = read_rows(remote / RESULTS_NAME), read_rows(local / RESULTS_NAME)
    for key in ("status", "error", "right_lung_px", "left_lung_px", "confidence", "mask_sha256"):
        assert {k: r[key] for k, r in ours.items()} == {k: r[key] for k, r in theirs.items()}
    # a re-run on the cluster finds everything done
    assert main(["predict", str(inputs), "-o", str(remote), "--scheduler", dask_scheduler, *common]) == 1
    assert _summary(capsys.readouterr().err).startswith(f"done 0, skipped {len(files)}, failed 1 ")
