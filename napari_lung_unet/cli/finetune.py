"""``lung-unet finetune``: fine-tune on accepted corrections and promote only if no worse.

The result says what it trained on, what it checked against what (before -> after), and why
the new version was or was not promoted. When the original validation data is not on this
computer, the gate checks the candidate on the reference X-rays shipped with the package, in each
convention the model knows (training/gate.py): it is promoted when no check failed and that one
passed. Only when no reference check can run is it kept "unverified" until you promote it
(--promote now, or later with `lung-unet models --promote VERSION`).

Each correction trains only its own lung convention's output. A corrections store's records say
which; --convention whole-lung then takes only the corrections accepted as whole-lung (the others
are set aside and named, never retrained as whole-lung). An images/ + masks/ folder says nothing,
so --convention says how all of it is drawn (default: lung-fields, or whole-lung for covid_v7labs).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from training.finetune import FinetuneConfig, FinetuneResult, finetune
from training.finetune_limits import LIMITS
from training.finetune_loop import TRAINABLE

from ..text import progress_bar
from .convention_option import add_convention
from .numbers import of_range


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = FinetuneConfig()
    p = sub.add_parser("finetune", help="fine-tune the current model on corrected masks", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corrections", metavar="DIR", help="corrections store or images/+masks/ folder (default: the widget's store)")
    add_convention(p, "the corrections' convention: in a store, fine-tune only on those accepted in it; "
                      "an images/+masks/ folder is taken as drawn in it (default: each correction's own)")
    p.add_argument("--from", dest="base_version", metavar="VERSION", help="registry version to start from (default: current)")
    p.add_argument("--unlabeled", action="append", metavar="DIR",
                   help="folder of your uncorrected X-rays (repeatable): replayed with the current model's masks, and checked for agreement")
    p.add_argument("--promote", action="store_true",
                   help="promote even though the original validation data is not on this computer (a failed check still rejects)")
    p.add_argument("--steps", type=of_range(LIMITS["steps"]), default=d.steps, help="optimiser steps (default: 50 with base data replayed, 60 without)")
    p.add_argument("--batch-size", type=of_range(LIMITS["batch_size"]), default=d.batch_size, help="images per step (default: 5 with base data replayed, 3 without)")
    p.add_argument("--lr", type=of_range(LIMITS["lr"]), default=d.lr, help="learning rate (0 leaves the weights as they are)")
    p.add_argument("--crop", type=of_range(LIMITS["crop"]), default=d.crop, metavar="PX",
                   help=f"each step trains on a PX-wide window of each image (default {d.crop}; 0: the whole image)")
    p.add_argument("--keep-others", type=of_range(LIMITS["keep_others"]), default=d.keep_others, help=argparse.SUPPRESS)
    p.add_argument("--ewc", type=of_range(LIMITS["ewc"]), default=d.ewc, help="strength of the pull towards the current weights (Fisher information); 0: off")
    p.add_argument("--replay", action="append", metavar="DIR", help="base data to replay (default: the model's training data)")
    p.add_argument("--no-replay", action="store_true", help="train on the corrections only")
    p.add_argument("--replay-ratio", type=of_range(LIMITS["replay_ratio"]), default=d.replay_ratio)
    p.add_argument("--replay-match", type=of_range(LIMITS["replay_match"]), default=d.replay_match,
                   help="share of the replayed base images drawn in the corrections' convention (default %(default)s)")
    p.add_argument("--train-layers", choices=sorted(TRAINABLE), default=d.train_layers,
                   help="weights to train: decoder (default), tail (decoder + the encoder's deepest block), all, norm (decoder normalisation only), last (last stage + head)")
    p.add_argument("--tolerance", type=of_range(LIMITS["tolerance"]), default=d.tolerance, help="allowed base-validation Dice loss")
    p.add_argument("--dataset-tolerance", type=of_range(LIMITS["dataset_tolerance"]), default=d.dataset_tolerance,
                   help="allowed Dice loss on any one base dataset (e.g. Montgomery alone)")
    p.add_argument("--forgetting-budget", type=of_range(LIMITS["forgetting_budget"]), default=d.forgetting_budget,
                   help="allowed estimated drift of predictions on the original training X-rays (Fisher check, nats per pixel)")
    p.add_argument("--device", default=d.device)
    p.add_argument("--seed", type=of_range(LIMITS["seed"]), default=d.seed, help="seed of the augmentations and batches (default: %(default)s)")
    p.add_argument("--json-progress", action="store_true", help="print progress as JSON lines (for the napari widget)")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    return FinetuneConfig(
        corrections=args.corrections, base_version=args.base_version, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        replay=[] if args.no_replay else args.replay, replay_ratio=args.replay_ratio, replay_match=args.replay_match, unlabeled=args.unlabeled, ewc=args.ewc,
        train_layers=args.train_layers, tolerance=args.tolerance, dataset_tolerance=args.dataset_tolerance,
        forgetting_budget=args.forgetting_budget, promote=args.promote, device=args.device, convention=args.convention,
        crop=args.crop, keep_others=args.keep_others, seed=args.seed,
    )


def result_json(result: FinetuneResult) -> dict:
    """The result as the "done" event carries it to the napari panel (JSON-ready)."""
    return asdict(result) | {"promoted": result.promoted}


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    bar = progress_bar(cfg.steps, "fine-tuning", "steps", disable=args.json_progress, own_eta=False)

    def progress(event: dict) -> None:
        if args.json_progress:
            payload = {k: (result_json(v) if k == "result" else v) for k, v in event.items()}
            print(json.dumps(payload), flush=True)
        elif event["stage"] == "train":
            bar.total = event["steps"]  # known once the engine knows whether base data is replayed
            bar.update(1)
            eta = event.get("eta_s")  # the engine's: measured steps and the check that follows them
            bar.set_postfix(loss=f"{event['loss']:.4f}", **({"ETA": f"{eta:.0f} s"} if eta is not None else {}))
        elif event.get("message"):
            bar.write(event["message"], file=sys.stderr)

    result = finetune(cfg, progress)
    bar.close()
    if not args.json_progress:
        print("\n".join(result.summary))
        print(f"{result.status.upper()}: {result.version} ({result.seconds:.0f} s)")
        if result.status == "unverified":
            print(f"To accept it anyway: lung-unet models --promote {result.version}")
    return 0
