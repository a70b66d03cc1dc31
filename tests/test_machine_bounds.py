"""Bounds from the machine and one set of limits for the API and the CLI (issue 31 #5, #7, and Ctrl-C at start-up).

- ``predict --workers`` above the cores is capped, with a note.
- ``finetune --batch-size`` / ``--keep-others`` that no free memory holds are refused in one line, before
  anything is read, trained or registered.
- ``FinetuneConfig`` refuses what ``lung-unet finetune`` refuses, from the same table.
- ``RefineContext.refine`` on a 1×1 or 3×100000 image answers (or says why), never a torch error.
- Ctrl-C in the first seconds of ``lung-unet finetune``: "interrupted", no traceback.
"""

from __future__ import annotations

import argparse
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_lung_unet.batch.threads import cores
from napari_lung_unet.cli import main
from napari_lung_unet.cli.dispatch import build_parser
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.nn.refine import Click, RefineContext
from napari_lung_unet.nn.registry import Registry
from training.finetune import FinetuneConfig
from training.finetune_limits import LIMITS


def _lung_unet() -> list[str]:
    exe = Path(sys.executable).with_name("lung-unet")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "napari_lung_unet.cli"]


def test_workers_above_the_cores_are_capped_with_a_note(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(2):
        iio.imwrite(inputs / f"c{i}.png", make_phantom((96, 96), seed=i, dtype=np.uint8)[0])
    asked = cores() + 62
    assert main(["predict", str(inputs), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir),
                 "--device", "cpu", "--workers", str(asked)]) == 0
    err = capsys.readouterr().err
    (note,) = [line for line in err.splitlines() if line.startswith(f"note: --workers {asked} capped at ")]
    workers = int(note.split("capped at ")[1].split(":")[0])
    assert 1 <= workers <= cores(), note
    assert f"{workers} worker(s)" in err


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_a_batch_no_free_memory_holds_is_refused_in_one_line(
    base_registry: Registry, phantom_dataset: Path, capsys: pytest.CaptureFixture,
) -> None:
    before = sorted(c.version for c in Registry().read_cards()[0])
    started = time.monotonic()
    assert main(["finetune", "--corrections", str(phantom_dataset), "--batch-size", "10000000", "--device", "cpu"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "10000000 image(s)" in line and "is free on cpu" in line and "--batch-size" in line, line
    assert time.monotonic() - started < 10  # refused up front, not after a failed allocation
    assert sorted(c.version for c in Registry().read_cards()[0]) == before  # nothing registered


def test_keep_others_no_free_memory_holds_is_refused_in_one_line(
    two_convention_current: str, phantom_dataset: Path, capsys: pytest.CaptureFixture,
) -> None:
    before = sorted(c.version for c in Registry().read_cards()[0])
    assert main(["finetune", "--corrections", str(phantom_dataset), "--keep-others", "10000000", "--device", "cpu"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "10000000 (keep-others)" in line and "--keep-others" in line, line
    assert sorted(c.version for c in Registry().read_cards()[0]) == before and Registry().current_version() == two_convention_current


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_unlabeled", 0), ("steps", 0), ("steps", -5), ("batch_size", 0), ("keep_others", -1), ("crop", -1),
     ("lr", math.nan), ("tolerance", 2.0), ("steps", 2.5), ("batch_size", True)],
)
def test_the_api_refuses_what_the_command_line_refuses(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"fine-tune {field} must be "):
        FinetuneConfig(**{field: value})


def test_every_finetune_option_with_a_range_takes_it_from_the_config_limits() -> None:
    parser = build_parser()
    finetune = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith("finetune"))
    ranged = {a.dest: a.type for a in finetune._actions if a.dest in LIMITS}
    assert {"steps", "batch_size", "keep_others", "lr", "crop", "ewc"} <= set(ranged)
    for dest, parse in ranged.items():
        limits = LIMITS[dest]
        below = (limits.low - 1) if limits.low is not None else None
        if below is not None:
            with pytest.raises(argparse.ArgumentTypeError, match=limits.text()):
                parse(str(below))
            with pytest.raises(ValueError, match=f"fine-tune {dest} must be {limits.text()}"):
                FinetuneConfig(**{dest: limits.kind(below)})


@pytest.mark.parametrize("shape", [(1, 1), (3, 100000), (100000, 3)])
def test_refine_on_an_image_far_smaller_than_the_model_input_answers(shape: tuple[int, int]) -> None:
    probability = np.full((64, 64), 0.2, np.float32)
    probability[20:40, 10:30] = 0.9
    for click in (Click(0, 0, True), Click(shape[0] - 1, shape[1] - 1, False), Click(shape[0] // 2, shape[1] // 2, True)):
        labels = np.zeros(shape, np.uint8)
        labels[:, : shape[1] // 2] = 1
        result = RefineContext(probability, shape).refine(labels, click)
        rows, cols = result.box
        assert 0 <= rows.start < rows.stop <= shape[0] and 0 <= cols.start < cols.stop <= shape[1]
        assert result.labels.shape == (rows.stop - rows.start, cols.stop - cols.start)
        assert rows.start <= click.row < rows.stop and cols.start <= click.col < cols.stop  # the clicked pixel is answered
        answered = result.labels[click.row - rows.start, click.col - cols.start]
        assert (answered > 0) == click.positive


@pytest.mark.parametrize("after_s", [0.3, 1.2])
def test_ctrl_c_in_the_first_seconds_of_a_finetune_prints_no_traceback(tmp_path: Path, after_s: float) -> None:
    proc = subprocess.Popen([*_lung_unet(), "finetune", "--corrections", str(tmp_path / "store")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after_s)  # the moment is the probe itself: Ctrl-C this long after the start
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
