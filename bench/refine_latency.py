"""Refine latency on a 20-Mpx X-ray: the time from a click to the refined labels, median of several clicks.

    python bench/refine_latency.py [--side 5000x4000] [--runs 7] [--refiner DIR] [--no-record]

The image is the radiograph phantom at 5000 x 4000 px (20 Mpx); the model is the bundled one.
Each run clicks positive inside the lower right lung taken out of the proposal and negative
inside the right lung, on a fresh context, and times ``RefineContext.refine`` plus writing its box into the
labels (what the dock does through ``data_setitem``). The reference, measured in the same run, is
what a click would cost if it re-proposed the whole image instead. ``--refiner DIR`` times a learned
refiner (napari_lung_unet/nn/refine_learned.py) instead; its context, built once per proposal, resizes
the image to the refiner's input size, timed on its own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import median_time, publish  # noqa: E402

from napari_lung_unet.images.labels import RIGHT_LUNG  # noqa: E402
from napari_lung_unet.images.phantom_radiograph import make_radiograph_phantom  # noqa: E402
from napari_lung_unet.nn.model_io import load_model  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.nn.refine import Click, RefineContext  # noqa: E402
from napari_lung_unet.nn.refine_learned import DEFAULT_CROP, LearnedRefineContext  # noqa: E402
from napari_lung_unet.settings import bundled_model_dir  # noqa: E402


def deepest(region: np.ndarray) -> tuple[int, int]:
    depth = ndimage.distance_transform_edt(region[::8, ::8])
    r, c = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return 8 * int(r), 8 * int(c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", default="5000x4000")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--refiner", default="", help="a learned refiner's folder")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    h, w = (int(v) for v in args.side.split("x"))
    image, _ = make_radiograph_phantom((h, w), seed=0)
    predictor = Predictor(load_model(bundled_model_dir()), device="cpu")
    prediction = predictor.predict(image)
    labels = prediction.labels
    lower = (labels == RIGHT_LUNG) & (np.arange(h)[:, None] > np.median(np.nonzero(labels == RIGHT_LUNG)[0]))
    cut = labels.copy()
    cut[lower] = 0
    positive = Click(*deepest(lower), positive=True)
    negative = Click(*deepest(labels == RIGHT_LUNG), positive=False)
    times: dict[str, list[float]] = {"positive": [], "negative": []}
    learned = load_model(args.refiner) if args.refiner else None
    setup: list[float] = []

    def context_for() -> RefineContext | LearnedRefineContext:
        t0 = time.perf_counter()
        made = (RefineContext.from_prediction(prediction) if learned is None
                else LearnedRefineContext.from_prediction(learned, prediction, image))
        setup.append(1000 * (time.perf_counter() - t0))
        return made

    for _ in range(args.runs):
        for name, start, click in (("positive", cut, positive), ("negative", labels, negative)):
            context = context_for()
            current = start.copy()
            t0 = time.perf_counter()
            done = context.refine(current, click)
            current[done.box] = done.labels
            times[name].append(1000 * (time.perf_counter() - t0))
    repropose = 1000 * median_time(lambda: predictor.predict(image), runs=3)
    pos, neg = statistics.median(times["positive"]), statistics.median(times["negative"])
    tool = "region growing" if learned is None else f"learned refiner {learned.card.version} (crop {learned.card.extra.get('crop', DEFAULT_CROP)}²)"
    lines = [
        f"{h} x {w} px ({h * w / 1e6:.0f} Mpx), model {predictor.version} at {predictor.card.input_size}², {tool}, "
        f"median of {args.runs} clicks each; the context per proposal: median {statistics.median(setup):.0f} ms:",
        "",
        "| click | refine ms (median) | max ms | whole re-proposal ms | ratio |",
        "|---|---|---|---|---|",
        f"| positive (missed lung) | {pos:.0f} | {max(times['positive']):.0f} | {repropose:.0f} | {pos / repropose:.3f} |",
        f"| negative (extra region) | {neg:.0f} | {max(times['negative']):.0f} | {repropose:.0f} | {neg / repropose:.3f} |",
    ]
    title = "Refine latency on a 20-Mpx X-ray" + ("" if learned is None else f", learned refiner {learned.card.version}")
    publish(title, lines, record=not args.no_record)


if __name__ == "__main__":
    main()
