"""What expected_dice adds to each image's cost in a batch (issue 29: goal ≤ 10 % over predict without it).

    python bench/quality_cost.py [--runs 5] [--no-record]

For each of the shipped CC BY reference X-rays (napari_lung_unet/reference/images, 1024² and others):
predict (read pixels in memory → preprocess → network → post-process to labels at the original
size), then the estimate on that prediction (nn/quality.py: features of the network-size probability
and the card's regression). Each is timed over ``--runs`` passes over all images; the table gives the
median per image and the ratio, both from the same run. CPU, one process, the bundled model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish  # noqa: E402

from napari_lung_unet.images.read import read_xray  # noqa: E402
from napari_lung_unet.nn.model_io import load_model  # noqa: E402
from napari_lung_unet.nn.postprocess import labels_from_probability  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.nn.quality import expected_dice  # noqa: E402
from napari_lung_unet.settings import bundled_model_dir  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1] / "napari_lung_unet" / "reference" / "images"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    loaded = load_model(bundled_model_dir())
    predictor = Predictor(loaded, device="cpu")
    images = [read_xray(p).pixels for p in sorted(REFERENCE.glob("*.png"))]
    predictor.predict(images[0])  # warm-up
    base, extra, whole = [], [], []
    card = loaded.card
    for _ in range(args.runs):
        for image in images:
            t0 = time.perf_counter()
            x, shape = predictor.prepare(image)  # what predict did before issue 29: no estimate
            prob = predictor.network(x[None])[0]
            labels_from_probability(prob, shape, card.threshold)
            t1 = time.perf_counter()
            expected_dice(prob, predictor.convention, card.quality, card.threshold)
            t2 = time.perf_counter()
            predictor.predict(image)  # today's predict: the estimate included
            t3 = time.perf_counter()
            base.append(t1 - t0)
            extra.append(t2 - t1)
            whole.append(t3 - t2)
    b, e, w = statistics.median(base), statistics.median(extra), statistics.median(whole)
    lines = [
        f"{len(images)} CC BY reference X-rays × {args.runs} runs, model {loaded.card.version} at {loaded.card.input_size}², CPU.",
        "",
        "| per image (median) | seconds |",
        "|---|---|",
        f"| predict without the estimate (preprocess, network, post-process) | {b:.4f} |",
        f"| expected_dice on that probability | {e:.4f} |",
        f"| predict as shipped (the estimate included; a check) | {w:.4f} |",
        f"| **ratio: estimate / predict** | **{e / b:.1%}** (goal ≤ 10 %) |",
    ]
    publish("expected_dice cost per image (bench/quality_cost.py)", lines, record=not args.no_record)


if __name__ == "__main__":
    main()
