"""Accuracy of a model on its own training run's validation split, per dataset, plus size and latency.

    python bench/default_model.py [MODEL_DIR] [--no-record]

Defaults to the bundled model. Scores are end to end (read, predict, post-process at the
masks' original size): Dice mean / median / worst, IoU, precision and recall.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _convention import looks_like_other_convention  # noqa: E402
from _report import median_time, publish  # noqa: E402

from napari_lung_unet.nn.card import WEIGHTS_NAME  # noqa: E402
from napari_lung_unet.images.read import read_xray  # noqa: E402
from napari_lung_unet.nn.model import count_parameters  # noqa: E402
from napari_lung_unet.nn.model_io import load_model  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.settings import bundled_model_dir, data_dir  # noqa: E402
from training.evaluate import load_cases, mean_dice, score_cases, summarise  # noqa: E402
from training.data import split_of_run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default=str(bundled_model_dir()))
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    loaded = load_model(args.model)
    card = loaded.card
    predictor = Predictor(loaded, device="cpu")
    lines = [
        f"Model `{card.version}`: U-Net base {card.architecture.base_channels}, depth {card.architecture.depth}, "
        f"{card.architecture.norm} norm, {card.architecture.upsample} up-sampling, input {card.input_size}², "
        f"{count_parameters(loaded.model) / 1e6:.2f} M parameters, weights {(Path(args.model) / WEIGHTS_NAME).stat().st_size / 1e6:.1f} MB. "
        f"Trained on {', '.join(card.training_data)} for {card.extra.get('training_minutes', '?')} min on {card.extra.get('hardware', '?')}.",
        "",
        "| dataset | val cases | Dice mean | Dice median | Dice worst | IoU | precision | recall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    breakdown = ["", "Cases the model under-segments (recall < 0.9 at precision > 0.95; on inspection these are mostly masks "
                 "that include the lung behind the heart, the other convention):", "",
                 "| dataset | such cases | their Dice | Dice of the other cases |", "|---|---|---|---|"]
    for name in ("montgomery", "shenzhen"):
        _, val = split_of_run(card, data_dir() / name)
        scores = score_cases(predictor, load_cases(val))
        s = summarise(scores)
        lines.append(f"| {name} | {s['n']['cases']} | {s['dice']['mean']:.4f} | {s['dice']['median']:.4f} | {s['dice']['worst']:.4f} "
                     f"| {s['iou']['mean']:.4f} | {s['precision']['mean']:.4f} | {s['recall']['mean']:.4f} |")
        under = [c for c in scores if looks_like_other_convention(c)]
        rest = [c for c in scores if c not in under]
        breakdown.append(f"| {name} | {len(under)} of {len(scores)} | {mean_dice(under):.4f} | {mean_dice(rest):.4f} |")
    lines += breakdown
    sample = sorted((data_dir() / "montgomery" / "images").glob("*.png"))[0]
    latency = median_time(lambda: predictor.predict(read_xray(sample)), runs=7)
    lines += ["", f"End-to-end `read_xray` + `predict` of one 512×512 Montgomery PNG on this CPU: median {latency * 1000:.0f} ms (7 runs)."]
    publish("Default model accuracy (bench/default_model.py)", lines, record=not args.no_record)


if __name__ == "__main__":
    main()
