"""Where Shenzhen's other-convention masks are: per block of case ids, train and validation splits alike.

    python bench/shenzhen_convention.py [MODEL_DIR] [--block 50] [--no-record]

Scores every Shenzhen case end to end with the model (default: the bundled one) and counts the
masks flagged as the other convention (bench/_convention.py) per block of NLM case ids. If the
flags cluster in id blocks, the convention follows the annotation batch, not anything the model
can see in the image, and no model trained on these labels can reach it.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _convention import looks_like_other_convention  # noqa: E402
from _report import publish  # noqa: E402

from napari_lung_unet.nn.model_io import load_model  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.settings import bundled_model_dir, data_dir  # noqa: E402
from training.evaluate import load_cases, mean_dice, score_cases  # noqa: E402
from training.data import split_of_run  # noqa: E402


def case_number(case_id: str) -> int:
    return int(case_id.split("_")[1])  # CHNCXR_0123_1 -> 123


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default=str(bundled_model_dir()))
    ap.add_argument("--block", type=int, default=50, help="case ids per row")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    loaded = load_model(args.model)
    predictor = Predictor(loaded, device="cpu")
    train, val = split_of_run(loaded.card, data_dir() / "shenzhen")
    split_of = {p.case_id: "val" for p in val} | {p.case_id: "train" for p in train}
    scores = score_cases(predictor, load_cases(train + val))
    rows: dict[int, list] = defaultdict(list)
    for s in scores:
        rows[case_number(s.case_id) // args.block].append(s)
    lines = [f"Model `{loaded.card.version}`, all {len(scores)} Shenzhen cases; flagged = looks like the other convention.", "",
             "| case ids | cases | flagged (train / val) | Dice of the block |", "|---|---|---|---|"]
    for block in sorted(rows):
        got = rows[block]
        flagged = [s for s in got if looks_like_other_convention(s)]
        n_val = sum(split_of[s.case_id] == "val" for s in flagged)
        lo = block * args.block
        lines.append(f"| {lo}–{lo + args.block - 1} | {len(got)} | {len(flagged)} ({len(flagged) - n_val} / {n_val}) | {mean_dice(got):.4f} |")
    flagged_all = [s for s in scores if looks_like_other_convention(s)]
    lines += ["", f"Flagged: {len(flagged_all)} of {len(scores)} (Dice {mean_dice(flagged_all):.4f}); "
              f"the others: Dice {mean_dice([s for s in scores if s not in flagged_all]):.4f}."]
    publish("Shenzhen mask conventions by case id (bench/shenzhen_convention.py)", lines, record=not args.no_record)


if __name__ == "__main__":
    main()
