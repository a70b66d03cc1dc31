"""Tag each Shenzhen case with its mask convention, for training default-3.

    python bench/tag_conventions.py [--out training/case_conventions.csv] [--montage /tmp/flagged.png]

A mask is tagged ``whole-lung`` when default-2 (trained on the lung-fields majority) misses a
large part of it while nearly everything it marks is lung (bench/_convention.py). The montage
shows each flagged case with the true mask (green) and default-2's proposal (red) for the
check by eye; it holds Shenzhen pixels, so it is written outside the repository.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _convention import looks_like_other_convention  # noqa: E402

from napari_lung_unet.nn.model_io import load_model  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.settings import bundled_model_dir, data_dir  # noqa: E402
from training.data import discover_pairs  # noqa: E402
from training.evaluate import load_cases, score_cases  # noqa: E402


def montage(cases, predictor, path: Path, tile: int = 160) -> None:
    import imageio.v3 as iio
    from skimage.segmentation import find_boundaries
    from skimage.transform import resize

    tiles = []
    for c in cases:
        img = resize(c.image, (tile, tile), anti_aliasing=True)
        img = (img - img.min()) / max(np.ptp(img), 1e-6)
        rgb = np.stack([img] * 3, -1)
        truth = resize(c.mask.astype(float), (tile, tile)) > 0.5
        prop = resize((predictor.predict(c.image).labels > 0).astype(float), (tile, tile)) > 0.5
        rgb[find_boundaries(truth)] = (0, 1, 0)
        rgb[find_boundaries(prop)] = (1, 0, 0)
        tiles.append(rgb)
    cols = 8
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i : i + cols], 1) for i in range(0, len(tiles), cols)]
    iio.imwrite(path, (np.concatenate(rows, 0) * 255).astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(bundled_model_dir()))
    ap.add_argument("--out", default="training/case_conventions.csv")
    ap.add_argument("--montage", default="")
    args = ap.parse_args()
    predictor = Predictor(load_model(args.model), device="cpu")
    cases = load_cases(discover_pairs(data_dir() / "shenzhen"))
    scores = score_cases(predictor, cases)
    flagged = [(c, s) for c, s in zip(cases, scores) if looks_like_other_convention(s)]
    rows = [{"dataset": "shenzhen", "case_id": s.case_id, "convention": "whole-lung",
             "recall": f"{s.recall:.3f}", "precision": f"{s.precision:.3f}"} for _, s in flagged]
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, ["dataset", "case_id", "convention", "recall", "precision"])
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} of {len(scores)} Shenzhen cases tagged whole-lung -> {args.out}")
    if args.montage:
        montage([c for c, _ in flagged], predictor, Path(args.montage))


if __name__ == "__main__":
    main()
