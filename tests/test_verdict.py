"""The fine-tune verdict in one line, told from results the engine produced (issue 20, item 5)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from napari_lung_unet.cli import main
from napari_lung_unet.cli.finetune import result_json
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.nn.registry import Registry
from training.finetune import FinetuneConfig, finetune

def _folder(root: Path, n: int, seed: int) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image, labels = make_phantom((96, 96), seed=seed + i)
        iio.imwrite(root / "images" / f"c{i}.png", image)
        iio.imwrite(root / "masks" / f"c{i}.png", ((labels > 0) * 255).astype(np.uint8))
    return root


def _run(corrections: Path, **kw) -> dict:
    """The engine's result as the panel receives it: the CLI's JSON of the "done" event."""
    cfg = dict(corrections=str(corrections), steps=40, batch_size=4, lr=3e-3, replay=[], device="cpu", train_layers="all")
    return json.loads(json.dumps(result_json(finetune(FinetuneConfig(**{**cfg, **kw})))))


def test_verdicts_of_real_results_and_models_prints_each_field_once(base_registry: Registry, tmp_path: Path, capsys) -> None:
    from napari_lung_unet.widget.finetune_text import result_lines, verdict

    corrections = _folder(tmp_path / "corrections", 8, seed=30)
    # the base data on disk and a candidate that gains on it: promoted, and the line says by how much
    promoted = _run(corrections, replay=[str(_folder(tmp_path / "base", 24, seed=100))])
    assert promoted["status"] == "promoted", promoted["summary"]
    held = next(c for c in promoted["checks"] if c["kind"] == "holdout")
    assert verdict(promoted) == f"Promoted: your held-out corrections {held['before']:.3f} → {held['after']:.3f}"

    # no base data on this computer: nothing measured what it already did well
    unverified = _run(corrections, base_version="base")
    assert unverified["status"] == "unverified", unverified["summary"]
    assert verdict(unverified).startswith("Unverified: ")

    # an absurd learning rate wrecks it: the held-out corrections got worse, with the numbers
    wrecked = _run(corrections, base_version=promoted["version"], lr=50.0, steps=5)
    assert wrecked["status"] == "rejected", wrecked["summary"]
    held = next(c for c in wrecked["checks"] if c["kind"] == "holdout")
    assert held["after"] < held["before"]
    assert verdict(wrecked) == f"Not promoted: your held-out corrections got worse ({held['before']:.3f} → {held['after']:.3f})"

    for result in (promoted, unverified, wrecked):
        line = verdict(result)
        assert "\n" not in line and not re.search(r"nats|KL|Fisher|holdout_dice", line)
        assert any("held-out corrections" in row for row in result_lines(result))  # the checks are kept for the fold

    assert main(["models"]) == 0
    rows = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    row = rows[wrecked["version"]]
    assert row.count("holdout_dice=") == 1, row
    assert f"holdout_dice={held['before']:.3f}->{held['after']:.3f}" in row
    assert all(row.count(f"{name}=") <= 1 for row in rows.values() for name in re.findall(r"(\w+)=", row))


def test_a_promotion_whose_held_out_corrections_fell_within_their_noise_says_so() -> None:
    from napari_lung_unet.widget.finetune_text import verdict
    from training import gate

    lf = ("", "lung-fields")
    checks = [gate.holdout_check(0.976, 0.969, 1, trained_on_them=False, tolerance=0.01),
              *gate.base_checks({lf: 0.970}, {lf: 0.969}, {lf: 26}, 0.005, 0.01)]
    status, reason = gate.decide(checks, confirmed=False)
    result = {"status": status, "reason": reason, "checks": [c.to_dict() for c in checks]}
    assert verdict(result) == "Promoted: your held-out corrections 0.976 → 0.969, within what a few cases vary"
    gained = [gate.holdout_check(0.969, 0.976, 1, trained_on_them=False, tolerance=0.01), *checks[1:]]
    result = {"status": "promoted", "reason": gate.decide(gained, confirmed=False)[1], "checks": [c.to_dict() for c in gained]}
    assert verdict(result) == "Promoted: your held-out corrections 0.969 → 0.976"
