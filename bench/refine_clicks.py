"""What each refine click does: the region it lands on, whether it fixes more than half of it, and what
it changes elsewhere. For working on the refiner (issue 19), where seconds per case hide why.

    python bench/refine_clicks.py DATASET [--convention C] [--cases N] [--clicks K] [--refiner DIR [--hybrid]]

DATASET is a folder of ``$LUNG_UNET_DATA`` (its validation split is used, as in correction_effort.py
``--split val``). Each case is reviewed as bench/_reviewer.py does, up to K clicks: the click goes to
the deepest point of the largest wrong region; a click that leaves more than half of it wrong is
followed by that region painted exactly (over the click's answer, as the reviewer does). One line per click:

    case k sign area_px2 depth_px paint_s other fixed harm helped

``area`` and ``depth`` in screen px (900 px tall), ``paint_s`` what painting the region would cost,
``other`` whether the model's other convention answered the click, ``fixed`` the share of the region
made right, ``harm`` the pixels changed outside it over the region's size, ``helped`` those of them made
right (a refiner that redraws the clicked side fixes other regions there: issue 30). ``--refiner DIR``
clicks with a learned refiner (napari_lung_unet/nn/refine_learned.py), as correction_effort.py does. The
last line counts the clicks that fixed more than half of their region.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _reviewer import Screen, dice, paint  # noqa: E402

from napari_lung_unet.nn.clicks import click_point, largest_region  # noqa: E402
from napari_lung_unet.nn.model_io import load_model  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.nn.refine import Click, RefineContext  # noqa: E402
from napari_lung_unet.nn.refine_learned import LearnedRefineContext  # noqa: E402
from napari_lung_unet.settings import bundled_model_dir, data_dir  # noqa: E402
from training.data import read_pair, split_of_run  # noqa: E402

TARGET = 0.97


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--model", default=str(bundled_model_dir()))
    ap.add_argument("--convention", default="lung-fields")
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--clicks", type=int, default=4)
    ap.add_argument("--refiner", default="", help="a learned refiner's folder: click with it instead of region growing")
    ap.add_argument("--hybrid", action="store_true", help="with --refiner: a click the other convention agrees with takes its region")
    args = ap.parse_args()
    loaded = load_model(args.model)
    learned = load_model(args.refiner) if args.refiner else None
    own = Predictor(loaded, device="cpu", convention=args.convention)
    others = [c for c in loaded.card.conventions if c != args.convention]
    other = Predictor(loaded, device="cpu", convention=others[0]) if others else None
    _, val = split_of_run(loaded.card, data_dir() / args.dataset)
    fixed_half = total = 0
    for pair in val[: args.cases]:
        image, mask = read_pair(pair)
        truth = mask > 0
        prediction = own.predict(image)
        other_prediction = None if other is None else other.predict(image)
        context: RefineContext | LearnedRefineContext = (
            RefineContext.from_prediction(prediction, other_prediction) if learned is None
            else LearnedRefineContext.from_prediction(learned, prediction, image, other=other_prediction if args.hybrid else None))
        screen, labels = Screen(truth.shape), prediction.labels.copy()
        for k in range(args.clicks):
            region = largest_region((labels > 0) ^ truth, screen.min_region)
            if dice(labels > 0, truth) >= TARGET or region is None:
                break
            r, c = click_point(region)
            click = Click(r, c, bool(truth[r, c]))
            heuristic = context if isinstance(context, RefineContext) else context.heuristic
            answered = heuristic is not None and heuristic.uses_other(click)
            done = context.refine(labels, click)
            after = labels.copy()
            after[done.box] = done.labels
            fixed = float(((after[region] > 0) == truth[region]).mean())
            elsewhere = ((after > 0) != (labels > 0)) & ~region
            harm = float(elsewhere.sum() / region.sum())
            helped = float((elsewhere & ((after > 0) == truth)).sum() / region.sum())
            depth = float(ndimage.distance_transform_edt(np.pad(region, 1)).max()) * screen.scale
            print(f"{pair.case_id} {k} {'+' if click.positive else '-'} {region.sum() * screen.scale**2:.0f} {depth:.0f} "
                  f"{screen.stroke_seconds(region):.1f} {answered} {fixed:.2f} {harm:.2f} {helped:.2f}", flush=True)
            total += 1
            labels = after  # as the reviewer has it: the click's answer stays, and a failed region is painted over it
            if fixed >= 0.5:
                fixed_half += 1
            else:
                paint(labels, region, truth)
    print(f"clicks that fixed more than half of their region: {fixed_half} of {total}")


if __name__ == "__main__":
    main()
