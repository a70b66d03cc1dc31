"""Which inference-time levers move a model's validation Dice: input size, threshold, flip TTA, post-processing.

    python bench/accuracy_levers.py [MODEL_DIR ...] [--sizes 320 352] [--thresholds 0.3 0.4] [--no-record]

For each model (default: the bundled one), on each dataset's validation split from the model's own
training run, end to end at the masks' size. Every variant reuses the same weights; only how they
are run changes. A first row gives the ceiling of the input resolution itself: the true mask
shrunk to the model's input size and post-processed back up, scored against itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import append_markdown  # noqa: E402
from _reviewer import dice  # noqa: E402 - exact Dice, empty against empty 1 (as training.metrics)

from napari_lung_unet.nn.model_io import LoadedModel, load_model  # noqa: E402
from napari_lung_unet.nn.postprocess import labels_from_probability  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.nn.preprocess import resize  # noqa: E402
from napari_lung_unet.settings import bundled_model_dir, data_dir  # noqa: E402
from training.evaluate import LoadedCase, load_cases  # noqa: E402
from training.data import split_of_run  # noqa: E402

DATASETS = ("montgomery", "shenzhen")


def variant_scores(predictor: Predictor, cases: list[LoadedCase], threshold: float, raw: bool) -> float:
    """Mean Dice; ``raw`` thresholds the up-sampled probability without any post-processing."""
    scores = []
    for case in cases:
        x, shape = predictor.prepare(case.image)
        prob = predictor.network(x[None])[0]
        labels = resize(prob, shape).numpy() > threshold if raw else labels_from_probability(prob, shape, threshold)
        scores.append(dice(labels > 0, case.mask > 0))
    return float(np.mean(scores))


def ceiling(cases: list[LoadedCase], size: int) -> float:
    return float(np.mean([dice(labels_from_probability(resize(c.mask.astype(np.float32), (size, size)).numpy(), c.mask.shape) > 0, c.mask > 0)
                          for c in cases]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=[str(bundled_model_dir())])
    ap.add_argument("--sizes", type=int, nargs="*", default=[])
    ap.add_argument("--thresholds", type=float, nargs="*", default=[0.3, 0.4])
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    lines = ["| model | variant | " + " | ".join(f"{d} Dice" for d in DATASETS) + " |", "|---|---|" + "---|" * len(DATASETS)]
    for model_dir in args.models:
        loaded = load_model(model_dir)
        card = loaded.card
        cases = {d: load_cases(split_of_run(card, data_dir() / d)[1]) for d in DATASETS}
        name = f"`{card.version}` ({card.input_size}²)"

        def row(label: str, values: list[float]) -> None:
            lines.append(f"| {name} | {label} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
            print(lines[-1], flush=True)

        row(f"ceiling: true mask at {card.input_size}² and back", [ceiling(cases[d], card.input_size) for d in DATASETS])
        base = Predictor(loaded, device="cpu")
        row(f"as shipped (threshold {card.threshold}, post-processed)", [variant_scores(base, cases[d], card.threshold, False) for d in DATASETS])
        row("no post-processing", [variant_scores(base, cases[d], card.threshold, True) for d in DATASETS])
        for t in args.thresholds:
            row(f"threshold {t}", [variant_scores(base, cases[d], t, False) for d in DATASETS])
        flipped = Predictor(loaded, device="cpu", flip_tta=True)
        row("horizontal-flip test-time augmentation", [variant_scores(flipped, cases[d], card.threshold, False) for d in DATASETS])
        for size in args.sizes:
            resized = Predictor(LoadedModel(loaded.model, dataclasses.replace(card, input_size=size), loaded.path), device="cpu")
            row(f"same weights run at {size}²", [variant_scores(resized, cases[d], card.threshold, False) for d in DATASETS])
    if not args.no_record:
        append_markdown("Accuracy levers at inference (bench/accuracy_levers.py)", " ".join(["python", *sys.argv]), lines)


if __name__ == "__main__":
    main()
