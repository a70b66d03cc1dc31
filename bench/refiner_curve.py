"""The learned refiner's training curve so far (issue 30): steps, first-click success, hours.

    python bench/refiner_curve.py [--checkpoint cache/refiner/refiner-h/checkpoint.pt] [--every 250] [--no-record]

Reads the history the resumable run (scripts/train_refiner.sh) keeps in its checkpoint: every evaluation's
validation click success (the share of first clicks that fix the region they were made in) and the share of
wrong pixels fixed, with the hours the run had taken by then (all sessions together). Rows every ``--every``
steps, and the best so far.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish  # noqa: E402

from training.refiner_train import load_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=REPO / "cache" / "refiner" / "refiner-h" / "checkpoint.pt")
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--where", default="CPU, 2 cores shared with other work, one torch thread")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    state = load_checkpoint(args.checkpoint)
    history = state["history"]
    best = max(history, key=lambda h: h["val_click_success"])
    rows = [h for h in history if h["step"] % args.every == 0 or h is best or h is history[-1]]
    lines = [f"Checkpoint `{args.checkpoint.relative_to(REPO) if args.checkpoint.is_relative_to(REPO) else args.checkpoint}` "
             f"at step {state['step']}, {state['seconds'] / 3600:.1f} h of training ({args.where}).", "",
             "| step | val first-click success | val wrong pixels fixed | hours |", "|---|---|---|---|"]
    for h in rows:
        mark = " (best)" if h is best else ""
        hours = h.get("hours")
        lines.append(f"| {h['step']}{mark} | {h['val_click_success']:.3f} | {h['val_fixed']:.3f} | "
                     f"{'' if hours is None else f'{hours:.2f}'} |")
    print("\n".join(lines))
    publish("Learned refiner: training curve (bench/refiner_curve.py)", lines, record=not args.no_record)


if __name__ == "__main__":
    main()
