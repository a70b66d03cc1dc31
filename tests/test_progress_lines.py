"""`lung-unet train` and `finetune` with stderr in a log file: progress as plain lines, not a bar
redrawn with carriage returns (issue 18: a log held one line of thousands of bars)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsStore


def _cli(args: list[str], log: Path) -> tuple[int, str, str]:
    """Run the CLI in its own process with stderr written to ``log`` (a file, as under nohup)."""
    with open(log, "w") as err:
        done = subprocess.run([sys.executable, "-m", "napari_lung_unet.cli", *args], stdout=subprocess.PIPE, stderr=err,
                              text=True, env=os.environ.copy(), timeout=600)
    return done.returncode, done.stdout, log.read_text()


def test_train_progress_in_a_log_file_is_lines(phantom_dataset: Path, tmp_path: Path) -> None:
    code, out, err = _cli(["train", "--data", str(phantom_dataset), "--output", str(tmp_path / "run"), "--epochs", "2",
                           "--batch-size", "2", "--input-size", "64", "--base-channels", "4", "--depth", "2",
                           "--workers", "0", "--device", "cpu"], tmp_path / "train.log")
    assert code == 0, err
    assert "\r" not in err and "\x1b" not in err
    # the first batch of each epoch is on record at once, with its count, share, time and time left
    for epoch in (1, 2):
        assert re.search(rf"^epoch {epoch}/2: 1/(\d+) batches, \d+ %, \d+ s, about \d+ s left", err, re.M), err
    assert re.search(r"^loading: 1/\d+ images", err, re.M), err
    assert "epoch 2: loss" in out  # the trainer's own line per epoch, on stdout as before


def test_finetune_progress_in_a_log_file_is_lines(tiny_current: str, tmp_path: Path) -> None:
    store = CorrectionsStore(tmp_path / "corrections")
    for i in range(4):
        image, labels = make_phantom((96, 96), seed=60 + i)
        store.add(image, labels, CorrectionRecord(f"case{i}", f"/site/case{i}.png", "0" * 64, tiny_current, 0.1))
    code, out, err = _cli(["finetune", "--corrections", str(store.root), "--no-replay", "--steps", "4", "--device", "cpu"],
                          tmp_path / "finetune.log")
    assert code == 0, err
    assert "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    assert "reading corrections" in lines  # the engine's stage messages are lines of their own
    steps = [line for line in lines if line.startswith("fine-tuning: ")]
    assert steps[0].startswith("fine-tuning: 1/4 steps, 25 %") and steps[-1].startswith("fine-tuning: 4/4 steps, 100 %"), err
    assert "Trained " in out and "of your 4 corrections (1 held back" in out


def test_eta_is_measured_steps_plus_the_check_after_them(tiny_current: str, tmp_path: Path) -> None:
    from training.finetune import FinetuneConfig, finetune
    from training.finetune_loop import ETA_AFTER_STEPS, eta_seconds

    # the rule: no ETA until a few steps are timed; the first (warm-up) is left out of the median
    assert eta_seconds([9.0, 1.0], 10, 5.0) is None
    assert eta_seconds([9.0, 1.0, 3.0, 2.0], 10, 5.0) == 2.0 * 10 + 5.0

    store = CorrectionsStore(tmp_path / "corrections")
    for i in range(4):
        image, labels = make_phantom((96, 96), seed=70 + i)
        store.add(image, labels, CorrectionRecord(f"case{i}", f"/site/case{i}.png", "0" * 64, tiny_current, 0.1))
    events: list[dict] = []
    finetune(FinetuneConfig(corrections=str(store.root), steps=6, batch_size=2, replay=[], device="cpu"), events.append)
    etas = [e["eta_s"] for e in events if e["stage"] == "train"]
    assert etas[: ETA_AFTER_STEPS - 1] == [None] * (ETA_AFTER_STEPS - 1)
    assert all(isinstance(eta, float) and eta > 0 for eta in etas[ETA_AFTER_STEPS - 1:])
    # after the last step only the check is left: scoring 1 held-out case with both models, timed before training
    assert 0 < etas[-1] < etas[ETA_AFTER_STEPS - 1]
