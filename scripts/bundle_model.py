"""Copy a trained model into the package as the bundled default, with its validation scores in the card.

    python scripts/bundle_model.py runs/default/best [--version NAME] [--runs RUN_DIR ...]
    python scripts/bundle_model.py --rescore

``--rescore`` scores the bundled model again and rewrites only its card's validation scores (the
weights, their Fisher file and the rest of the card stay): for when the true masks' convention tags
change (training/case_conventions.csv), so the card reports what the model really does.

The card records mean/median/worst Dice, IoU, precision and recall on each dataset's
validation split (the same split the training run held out), computed end to end at the
masks' original size, plus the training hardware and time from the run's CSV logs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_lung_unet.nn.card import CARD_NAME, ModelCard
from napari_lung_unet.nn.model_io import LoadedModel, load_model, save_model
from napari_lung_unet.store.atomic import atomic_write_bytes, atomic_write_json
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.settings import bundled_model_dir, data_dir
from training.evaluate import load_cases, score_cases, summarise
from training.data import split_of_run
from training.fisher import FISHER_NAME
from training.runlog import LOG_NAME, read_log


def training_minutes(run_dirs: list[Path]) -> float:
    return sum(float(row["seconds"]) for run in run_dirs for row in read_log(run / LOG_NAME)) / 60


def validation_metrics(loaded: LoadedModel) -> dict[str, dict]:
    """The card's validation scores: each dataset the model trained on, on its run's validation split, end to end."""
    card = loaded.card
    predictor = Predictor(loaded, device="cpu")
    validation, by_convention = {}, {}
    for name in card.training_data:
        _, val = split_of_run(card, data_dir() / name)
        scores = score_cases(predictor, load_cases(val))  # each case in the convention its mask is drawn in
        validation[name] = summarise(scores)
        by_convention[name] = {c: summarise([s for s in scores if s.convention == c]) for c in sorted({s.convention for s in scores})}
        print(f"{name}: Dice mean {validation[name]['dice']['mean']:.4f} worst {validation[name]['dice']['worst']:.4f}; "
              + ", ".join(f"{c} {v['dice']['mean']:.4f} ({v['n']['cases']})" for c, v in by_convention[name].items()))
    return {**card.metrics, "validation": validation, "validation_by_convention": by_convention}


def rescore() -> None:
    loaded = load_model(bundled_model_dir())
    loaded.card.metrics = validation_metrics(loaded)
    atomic_write_json(bundled_model_dir() / CARD_NAME, loaded.card.to_dict())
    print(f"rescored {loaded.card.version} in {bundled_model_dir()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, nargs="?")
    ap.add_argument("--rescore", action="store_true", help="only score the bundled model again (see above)")
    ap.add_argument("--version", default="", help="version name (default: the one in the model's card)")
    ap.add_argument("--runs", type=Path, nargs="*", default=None,
                    help="run folders whose log.csv epoch times add up to the training time (default: the model's run)")
    args = ap.parse_args()
    if args.rescore:
        return rescore()
    if args.model is None:
        ap.error("give the model folder to bundle, or --rescore")
    loaded = load_model(args.model)
    card: ModelCard = loaded.card
    card.metrics = validation_metrics(loaded)
    card.version = args.version or card.version
    card.status = "bundled"
    card.extra = {**card.extra, "training_minutes": round(training_minutes(args.runs or [args.model.parent]), 1),
                  "reproduce": "scripts/train_default.sh"}
    save_model(bundled_model_dir(), loaded.model, card)
    # the Fisher file belongs to these weights: a stale one (the previous default's) would pull
    # fine-tunes towards the wrong parameters, so it is replaced or removed, never kept
    fisher, target = args.model / FISHER_NAME, bundled_model_dir() / FISHER_NAME
    if fisher.is_file():
        atomic_write_bytes(target, fisher.read_bytes())
    else:
        target.unlink(missing_ok=True)
    print(f"bundled {card.version} into {bundled_model_dir()}")


if __name__ == "__main__":
    main()
