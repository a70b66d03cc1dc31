"""``lung-unet evaluate``: Dice, IoU, precision and recall of a model against true masks.

With --convention every case is taken as drawn in that one and scored with the model's output for it.
Without it, a folder named like a dataset this package knows (montgomery, shenzhen, covid_v7labs: the
folder holding images/ and masks/) is scored in the convention its masks are known to be drawn in
(training/data.py's table); any other folder in the model's default convention. Either way the first
line says which convention it scores, and why.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from tqdm import tqdm

from napari_lung_unet.nn.predict import Predictor
from training.data import Pair, discover_pairs, known_datasets
from training.evaluate import load_cases, score_cases, summarise, write_scores_csv
from training.metrics import METRIC_NAMES

from ..batch.temp_folder import owned_temp_folder
from ..nn.card import ModelCard
from .convention_option import add_convention

EVAL_PREFIX = "lung_unet_eval_"


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


def _paired_root(images: Path, masks: Path, stack: ExitStack) -> Path:
    """discover_pairs wants images/ + masks/ siblings; link arbitrary folders into that shape, in a
    temporary folder that goes when ``stack`` closes (Ctrl-C and SIGTERM included)."""
    if images.parent == masks.parent and images.name == "images" and masks.name == "masks":
        return images.parent
    root = stack.enter_context(owned_temp_folder(EVAL_PREFIX))
    (root / "images").symlink_to(images.resolve(), target_is_directory=True)
    (root / "masks").symlink_to(masks.resolve(), target_is_directory=True)
    return root


def convention_plan(root: Path, asked: str | None, card: ModelCard) -> tuple[str | None, str]:
    """The convention to hand discover_pairs for the folder ``root`` (None: the package's table of a known
    dataset), and the line that says so."""
    if asked:
        return asked, f"scoring every case as drawn {asked} (--convention)"
    if root.name in known_datasets():
        return None, f"{root.name} is a dataset this package knows: each case scored in the convention its masks are drawn in"
    default = card.default_convention
    return default, (f"scoring every case as drawn {default}, {card.version}'s default: the folder's name says nothing "
                     "about how its masks are drawn (give --convention if they are drawn otherwise)")


def _counted(pairs: list[Pair]) -> str:
    return ", ".join(f"{n} {c}" for c, n in sorted(Counter(p.convention for p in pairs).items()))


def run(args: argparse.Namespace) -> int:
    images, masks = Path(args.images), Path(args.masks)
    for folder in (images, masks):
        if not folder.is_dir():
            raise ValueError(f"folder not found: {folder}")
    # the model first: one that does not know the asked convention refuses by name before any case is read
    predictor = Predictor.from_registry(args.model, device=args.device, convention=args.convention)
    with ExitStack() as stack:
        root = _paired_root(images, masks, stack)
        convention, said = convention_plan(root, args.convention, predictor.card)
        pairs = discover_pairs(root, convention)
        print(f"masks {masks}: {said} ({_counted(pairs)})")
        cases = load_cases(pairs)  # read into memory: the linked folder is no longer needed
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
