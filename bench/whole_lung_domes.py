"""How much of each mask lies under the model's diaphragm line, case by case (issue 17).

    python bench/whole_lung_domes.py [--model DIR] [--datasets shenzhen covid_v7labs]
                                     [--conventions whole-lung lung-fields] [--record]

For every case drawn in one of ``--conventions``, the model's labels in that convention at its
input size and the true mask at the same size: the share of the true lung that lies below the lowest lung pixel
the model marks in the same column (the lung a mask draws under the dome, down to the posterior
recess), and the case's Dice there. A mask that stops at the dome scores near 0; one drawn down to a
flat line under the left dome scores 0.1 or more. Then the mean Dice of each split with and without
the cases over ``--share``: whether the misses of a convention are spread over the cases or are a
second way of drawing it. No picture is written (Shenzhen's pixels may not be shared).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish  # noqa: E402
from _reviewer import dice  # noqa: E402

from napari_lung_unet.nn.model_io import load_model  # noqa: E402
from napari_lung_unet.nn.postprocess import labels_from_probability  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.nn.preprocess import resize  # noqa: E402
from napari_lung_unet.settings import bundled_model_dir, data_dir  # noqa: E402
from training.data import read_pair, split_of_run  # noqa: E402


def below_the_line(predicted: np.ndarray, truth: np.ndarray) -> float:
    """The share of ``truth`` below the lowest ``predicted`` pixel of its column (columns the model leaves empty do not count)."""
    marked = predicted.any(0)
    lowest = predicted.shape[0] - 1 - np.argmax(predicted[::-1], 0)
    rows = np.arange(predicted.shape[0])[:, None]
    under = truth & marked[None, :] & (rows > lowest[None, :])
    return float(under.sum() / max(int(truth.sum()), 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(bundled_model_dir()))
    ap.add_argument("--datasets", nargs="+", default=["shenzhen", "covid_v7labs"])
    ap.add_argument("--conventions", nargs="+", default=["whole-lung"], help="the conventions whose cases are measured")
    ap.add_argument("--share", type=float, default=0.05, help="a case with more of its lung than this under the line is listed")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    loaded = load_model(args.model)
    size = (loaded.card.input_size, loaded.card.input_size)
    lines = ["| dataset, split, convention | cases | cases over the share | their Dice | mean Dice | without them |", "|---|---|---|---|---|---|"]
    listed: list[str] = []
    for name, convention in ((n, c) for n in args.datasets for c in args.conventions):
        drawing = Predictor(loaded, device="cpu", convention=convention)
        for split, pairs in zip(("train", "val"), split_of_run(loaded.card, data_dir() / name)):
            scores: list[tuple[str, float, float]] = []
            for pair in (p for p in pairs if p.convention == convention):
                image, mask = read_pair(pair)
                truth = resize((mask > 0).astype(np.float32), size).numpy() > 0.5
                x, _ = drawing.prepare(image)  # the network's probability only: labels at the input size, not the image's
                predicted = labels_from_probability(drawing.network(x[None])[0], size, loaded.card.threshold) > 0
                scores.append((pair.case_id, below_the_line(predicted, truth), dice(predicted, truth)))
            if not scores:
                continue
            over = [s for s in scores if s[1] > args.share]
            rest = [s[2] for s in scores if s[1] <= args.share]
            listed += [f"- {name} {split} {convention} {case}: {share:.1%} of the lung under the line, Dice {dice:.3f}" for case, share, dice in over]
            lines.append(
                f"| {name}, {split}, {convention} | {len(scores)} | {len(over)} | {', '.join(f'{s[2]:.3f}' for s in over) or '–'} "
                f"| {np.mean([s[2] for s in scores]):.4f} | {np.mean(rest) if rest else float('nan'):.4f} |"
            )
    lines += ["", f"Dice at the model's input size ({size[0]}²), model {loaded.card.version}; cases with more than {args.share:.0%} "
              "of the true lung below the model's lowest lung pixel in the same column:", "", *listed]
    publish(f"Masks drawn under the dome (bench/whole_lung_domes.py), {', '.join(args.conventions)}, {loaded.card.version}", lines, record=args.record)


if __name__ == "__main__":
    main()
