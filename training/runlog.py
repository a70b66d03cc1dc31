"""The training run's CSV log: one row per epoch (loss, the seed's four metrics, validation, lr, time).

Its own module so that the trainer writes it and the curve plotter and benchmarks read it
without importing the trainer (trainer.py and curves.py used to import each other).
"""

from __future__ import annotations

import csv
from pathlib import Path

from napari_lung_unet.store.atomic import atomic_write_csv

from .metrics import METRIC_NAMES

LOG_NAME = "log.csv"
CSV_FIELDS = ["epoch", "loss", *METRIC_NAMES, "val_loss", *(f"val_{m}" for m in METRIC_NAMES), "lr", "seconds"]


def write_log(path: Path, rows: list[dict]) -> None:
    """Rewrite the whole log atomically: a crash mid-epoch leaves the previous complete log."""
    # per-convention validation Dice (val_dice_whole-lung, ...) follows the fixed columns
    extra = sorted({k for row in rows for k in row} - set(CSV_FIELDS))
    atomic_write_csv(path, CSV_FIELDS + extra, rows)


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
