"""How often a fine-tune on a few corrections from a site the model already draws well is promoted (issue 17).

    python bench/finetune_promotion.py [--corrections 7] [--windows 3] [--data base none] [--lr LR] [--no-record]

The site: covid_v7labs patients the model never trained on (its own run's validation split, sorted by
case id), drawn whole-lung. Each window of ``--corrections`` consecutive cases is accepted as
corrections and fine-tuned with the defaults and the base data (``LUNG_UNET_DATA``), in a registry of
its own, as ``lung-unet finetune --corrections DIR --convention whole-lung`` runs it. For each: the gate's
held-out correction and base checks, its verdict, and the site's next cases (the other validation
cases) before → after, scored with the candidate whatever the gate decided. ``--data none`` runs the same
windows as a user without the base data has them (the gate then checks the shipped reference set); the
Montgomery column is scored here either way, on the parent's Montgomery validation cases.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish  # noqa: E402
from finetune_levers import link_subset  # noqa: E402

from napari_lung_unet.nn.model_io import load_model  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.nn.registry import Registry  # noqa: E402
from napari_lung_unet.settings import DATA_ENV, bundled_model_dir, data_dir  # noqa: E402
from training.data import split_of_run  # noqa: E402
from training.evaluate import load_cases, mean_dice, score_cases  # noqa: E402
from training.finetune_loop import TRAINABLE  # noqa: E402
from training.finetune import FinetuneConfig, finetune  # noqa: E402

CONVENTION = "whole-lung"


def _check(result, kind: str, name: str | None = None) -> str:  # type: ignore[no-untyped-def]
    c = next((c for c in result.checks if c["kind"] == kind and (name is None or c["name"] == name)), None)
    if c is None or c["before"] is None:
        return "–"
    return f"{c['before']:.4f} → {c['after']:.4f}{'' if c['passed'] else ' ✗'}"


def _restore(value: str | None) -> None:
    if value is None:
        os.environ.pop(DATA_ENV, None)
    else:
        os.environ[DATA_ENV] = value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corrections", type=int, default=7)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--data", nargs="+", default=["base"], choices=["base", "none"], help="with the base data, without, or both")
    ap.add_argument("--lr", type=float, default=FinetuneConfig.lr, help="the fine-tune's learning rate (default: its own)")
    ap.add_argument("--train-layers", choices=sorted(TRAINABLE), default=FinetuneConfig.train_layers, help="the fine-tune's --train-layers (default: its own)")
    ap.add_argument("--steps", type=int, default=None, help="the fine-tune's --steps (default: its own)")
    ap.add_argument("--replay-ratio", type=float, default=FinetuneConfig.replay_ratio, help="the fine-tune's --replay-ratio (default: its own)")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    parent = load_model(bundled_model_dir())  # a fresh registry's current model: what a new user fine-tunes
    _, val = split_of_run(parent.card, data_dir() / "covid_v7labs")
    val = sorted(val, key=lambda p: p.case_id)
    n = args.corrections
    # windows spread over the split, the last one ending at its end (they overlap when it is short)
    starts = sorted({round(i * (len(val) - n) / max(args.windows - 1, 1)) for i in range(args.windows)})
    work = Path(tempfile.mkdtemp(prefix="ft_promotion_"))
    (work / "no_data").mkdir()
    montgomery = load_cases(split_of_run(parent.card, data_dir() / "montgomery")[1])
    data = os.environ.get(DATA_ENV)
    lines = ["| base data | corrections (case ids) | held-out correction | base whole-lung (gate) | Montgomery val (bench) | "
             "next cases, whole-lung | verdict | time (s) |", "|---|---|---|---|---|---|---|---|"]
    try:
        for mode in args.data:
            for k, start in enumerate(starts):
                window = val[start:start + n]
                nxt = load_cases([p for p in val if p not in window])
                folder = link_subset(window, work / f"corrections-{mode}-{k}")
                home = work / f"home-{mode}-{k}"
                os.environ[DATA_ENV] = str(data_dir() if mode == "base" else work / "no_data")
                try:
                    result = finetune(FinetuneConfig(corrections=str(folder), convention=CONVENTION, home=str(home), device="cpu",
                                                     lr=args.lr, train_layers=args.train_layers, steps=args.steps,
                                                     replay_ratio=args.replay_ratio))
                finally:
                    _restore(data)
                candidate = Registry(home).load(result.version)
                before = mean_dice(score_cases(Predictor(parent, device="cpu", convention=CONVENTION), nxt))
                after = mean_dice(score_cases(Predictor(candidate, device="cpu", convention=CONVENTION), nxt))
                m_before = mean_dice(score_cases(Predictor(parent, device="cpu"), montgomery))
                m_after = mean_dice(score_cases(Predictor(candidate, device="cpu"), montgomery))
                lines.append(
                    f"| {mode} | {start + 1}–{start + n} ({', '.join(p.case_id[:8] for p in window)}) | {_check(result, 'holdout')} "
                    f"| {_check(result, 'base', f'original validation data ({CONVENTION})')} "
                    f"| {m_before:.4f} → {m_after:.4f} ({len(montgomery)}) | {before:.4f} → {after:.4f} ({len(nxt)}) "
                    f"| {result.status} | {result.seconds:.0f} |")
                print(lines[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines += ["", f"Parent `{parent.card.version}`, lr {args.lr:g}, --train-layers {args.train_layers}, steps {args.steps or 'default'}, "
              f"replay ratio {args.replay_ratio:g}; {n} corrections a window, of {len(val)} covid_v7labs validation cases "
              "(patients it never trained on); ✗: the check failed. 'next cases': the validation cases outside the window, "
              "scored with the candidate whether or not it was promoted."]
    publish(f"Fine-tune promotion at a site the model already draws well (bench/finetune_promotion.py), {parent.card.version}",
            lines, record=not args.no_record)


if __name__ == "__main__":
    main()
