"""Validation Dice per dataset (mean and worst) of a model on its own training run's validation split.

    python scripts/eval_default.py [MODEL_DIR] [--tta]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_lung_unet.model_io import load_model
from napari_lung_unet.predict import Predictor
from napari_lung_unet.settings import bundled_model_dir, data_dir
from training.data import discover_pairs, stable_split
from training.evaluate import load_cases, score_cases, summarise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model", nargs="?", default=str(bundled_model_dir()))
    ap.add_argument("--tta", action="store_true", help="average with the horizontally flipped input")
    args = ap.parse_args()
    loaded = load_model(args.model)
    tc = loaded.card.extra.get("train_config", {})
    predictor = Predictor(loaded, device="cpu", flip_tta=args.tta)
    results = {}
    for name in ("montgomery", "shenzhen"):
        _, val = stable_split(discover_pairs(data_dir() / name), float(tc.get("val_fraction", 0.15)), int(tc.get("seed", 0)))
        s = summarise(score_cases(predictor, load_cases(val)))
        results[name] = s
        print(f"{name:<11} n={s['n']['cases']:>3}  Dice mean {s['dice']['mean']:.4f}  median {s['dice']['median']:.4f}  "
              f"worst {s['dice']['worst']:.4f}  IoU {s['iou']['mean']:.4f}  precision {s['precision']['mean']:.4f}  recall {s['recall']['mean']:.4f}")


if __name__ == "__main__":
    main()
