"""Dice per dataset and convention, parent → candidate, end to end at the masks' original size.

    python bench/convention_accuracy.py PARENT_DIR CANDIDATE_DIR [--no-record]

Validation cases are the candidate's own training run's split (the parent's split of Montgomery
and Shenzhen is the same one: both hash case ids with seed 0). Every case is scored in the
convention its mask is drawn in when the model knows that convention, else in the model's own:
so a one-convention parent is scored as a user of it would see it. covid_v7labs is also scored
in full for the parent, which never saw it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish  # noqa: E402

from napari_lung_unet.nn.model_io import load_model  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.settings import data_dir  # noqa: E402
from training.data import discover_pairs, split_of_run  # noqa: E402
from training.evaluate import CaseScore, load_cases, mean_dice, score_cases  # noqa: E402

DATASETS = ("montgomery", "shenzhen", "covid_v7labs")


def _row(label: str, scores_by_model: list[list[CaseScore]]) -> str:
    cells = [f"{mean_dice(s):.4f} (worst {min(c.dice for c in s):.3f})" if s else "–" for s in scores_by_model]
    return f"| {label} | {len(scores_by_model[0])} | " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("parent")
    ap.add_argument("candidate")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    models = [load_model(args.parent), load_model(args.candidate)]
    predictors = [Predictor(m, device="cpu") for m in models]
    names = [m.card.version for m in models]
    lines = [
        f"| dataset / convention of the true masks | cases | {names[0]} | {names[1]} |",
        "|---|---|---|---|",
    ]
    for name in DATASETS:
        _, val = split_of_run(models[1].card, data_dir() / name)
        cases = load_cases(val)
        scored = [score_cases(p, cases) for p in predictors]
        conventions = sorted({c.pair.convention for c in cases})
        if len(conventions) > 1:
            lines.append(_row(f"{name} val, each case in its own convention", scored))
        for conv in conventions:
            lines.append(_row(f"{name} val, {conv}", [[s for s in sc if s.convention == conv] for sc in scored]))
        print("\n".join(lines[-1 - len(conventions):]), flush=True)
    all_covid = score_cases(predictors[0], load_cases(discover_pairs(data_dir() / "covid_v7labs")))
    lines.append(f"| covid_v7labs, all 74 (unseen by {names[0]}), whole-lung | {len(all_covid)} | {mean_dice(all_covid):.4f} | – |")
    lines += ["", f"A model that knows one convention is scored with it on every case; {names[1]} knows "
              f"{', '.join(models[1].card.conventions)}."]
    publish(f"Dice per dataset and convention, {names[0]} → {names[1]} (bench/convention_accuracy.py)", lines, record=not args.no_record)


if __name__ == "__main__":
    main()
