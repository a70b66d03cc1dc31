"""What a hospital user gets: Montgomery validation X-rays stored as DICOM in the lossless syntaxes
PACS archives use, segmented by ``lung-unet predict --seg`` with no training data on disk.

Per transfer syntax: Dice of the written masks against the true masks, and the CLI's wall time.
The DICOM files are written here from the PNGs (tests/dicom_files.py, the test extra's encoders).

    python bench/compressed_dicom.py [--syntaxes explicit jpeg_lossless jpeg_ls jpeg2000] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
from _report import publish  # noqa: E402
from dicom_files import write_radiograph  # noqa: E402

from napari_lung_unet.nn.registry import Registry  # noqa: E402
from napari_lung_unet.settings import DATA_ENV, data_dir  # noqa: E402
from training.data import read_mask, split_of_run  # noqa: E402
from training.metrics import binary_metrics  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--syntaxes", nargs="+", default=["explicit", "jpeg_lossless", "jpeg_ls", "jpeg2000"])
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    card = Registry(tempfile.mkdtemp()).load().card
    _, cases = split_of_run(card, data_dir() / "montgomery")
    work = Path(tempfile.mkdtemp(prefix="dicom_user_"))
    empty = work / "no_data"
    empty.mkdir()
    rows = []
    for syntax in args.syntaxes:
        src = work / syntax
        src.mkdir()
        for p in cases:
            write_radiograph(src / f"{p.case_id}.dcm", iio.imread(p.image))
        out = work / f"out-{syntax}"
        env = {**os.environ, DATA_ENV: str(empty), "LUNG_UNET_HOME": str(work / "home")}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "napari_lung_unet.cli", "predict", str(src), "--output", str(out), "--seg", "--device", "cpu"],
                       env=env, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        dice = []
        for p in cases:
            labels = iio.imread(out / f"{p.case_id}.png")
            truth = read_mask(p, labels.shape)
            dice.append(float(binary_metrics(torch.from_numpy(labels > 0)[None], torch.from_numpy(truth)[None])["dice"][0]))
        segs = len(list(out.glob("*.seg.dcm")))
        rows.append((syntax, float(np.mean(dice)), min(dice), segs, wall))
        print(f"{syntax}: Dice {np.mean(dice):.4f} (worst {min(dice):.4f}), {segs} SEGs, {wall:.1f} s", flush=True)
    lines = [
        f"{len(cases)} Montgomery validation X-rays (512², written as 12-bit DX DICOM), `{card.version}`, "
        "LUNG_UNET_DATA pointing at an empty folder; wall time is the whole `lung-unet predict --seg` process.",
        "",
        "| transfer syntax | Dice mean | Dice worst | SEGs written | wall time (s) |",
        "|---|---|---|---|---|",
        *(f"| {s} | {d:.4f} | {w:.4f} | {n} | {t:.1f} |" for s, d, w, n, t in rows),
    ]
    publish("Compressed DICOM as a hospital stores it, no training data on disk (bench/compressed_dicom.py)", lines, not args.no_record)


if __name__ == "__main__":
    main()
