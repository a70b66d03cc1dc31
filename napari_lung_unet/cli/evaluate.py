"""``lung-unet evaluate``: Dice, IoU, precision and recall of a model against true masks.

Without --convention each case is scored in the convention its masks are known to be drawn in
(training/data.py's table) when the model knows it, else in the model's own. With --convention
every case is taken as drawn in that one and scored with the model's output for it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from napari_lung_unet.nn.predict import Predictor
from training.data import discover_pairs
from training.evaluate import load_cases, score_cases, summarise, write_scores_csv
from training.metrics import METRIC_NAMES

from .convention_option import add_convention


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a model against true masks", description=__doc__)
    p.add_argument("--images", required=True, metavar="DIR")
    p.add_argument("--masks", required=True, metavar="DIR", help="masks named like the images (any label > 0 is lung)")
    p.add_argument("--model", metavar="NAME_OR_PATH", help="registry version or model folder (default: current)")
    p.add_argument("--device", default="auto")
    add_convention(p, "the convention the true masks are drawn in, used for every case (default: each case's known one)")
    p.add_argument("--csv", metavar="FILE", help="write per-case scores to this CSV")
    p.add_argument("--report", metavar="DIR", help="write worst-case pictures, a Dice histogram and the CSV here")
    p.set_defaults(run=run)


def _paired_root(images: Path, masks: Path) -> Path:
    """discover_pairs wants images/ + masks/ siblings; link arbitrary folders into that shape."""
    if images.parent == masks.parent and images.name == "images" and masks.name == "masks":
        return images.parent
    root = Path(tempfile.mkdtemp(prefix="lung_unet_eval_"))
    (root / "images").symlink_to(images.resolve(), target_is_directory=True)
    (root / "masks").symlink_to(masks.resolve(), target_is_directory=True)
    return root


def run(args: argparse.Namespace) -> int:
    images, masks = Path(args.images), Path(args.masks)
    for folder in (images, masks):
        if not folder.is_dir():
            raise ValueError(f"folder not found: {folder}")
    # the model first: one that does not know the asked convention refuses by name before any case is read
    predictor = Predictor.from_registry(args.model, device=args.device, convention=args.convention)
    pairs = discover_pairs(_paired_root(images, masks), args.convention)
    cases = load_cases(pairs)
    bar = tqdm(total=len(cases), desc="evaluating", unit="img", file=sys.stderr)
    scores = score_cases(predictor, cases, progress=lambda i, n: bar.update(1))
    bar.close()
    summary = summarise(scores)
    print(f"model {predictor.version} on {len(scores)} cases" + (f", all drawn {args.convention}" if args.convention else ""))
    print(f"{'metric':<10} {'mean':>8} {'median':>8} {'worst':>8}")
    for name in METRIC_NAMES:
        s = summary[name]
        print(f"{name:<10} {s['mean']:>8.4f} {s['median']:>8.4f} {s['worst']:>8.4f}")
    worst = min(scores, key=lambda s: s.dice)
    print(f"worst case: {worst.case_id} (Dice {worst.dice:.4f})")
    if args.csv:
        write_scores_csv(scores, args.csv)
    if args.report:
        from training.report import dice_histogram, worst_cases_grid

        report = Path(args.report)
        report.mkdir(parents=True, exist_ok=True)
        write_scores_csv(scores, report / "scores.csv")
        worst_cases_grid(predictor, cases, scores, report / "worst_cases.png")
        dice_histogram(scores, report / "dice_histogram.png")
        print(f"report written to {report}")
    return 0
