"""How close is the fine-tune's ETA to the time the result really takes?

12 covid_v7labs X-rays as corrections, the shipped model, ``finetune()`` as the Fine-tune button runs
it. Every train event's ETA is compared with the seconds that were really left until the result,
at the first ETA and at 25/50/90 % of the steps; beside it, the old estimate (mean step so far times
the steps left, nothing for the gate), worked out from the same events' times.

    python bench/finetune_eta.py [--data none base] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish  # noqa: E402
from finetune_levers import link_subset  # noqa: E402

from napari_lung_unet.settings import DATA_ENV, HOME_ENV, data_dir  # noqa: E402
from training.data import discover_pairs, stable_split  # noqa: E402
from training.finetune import FinetuneConfig, finetune  # noqa: E402


def run(corrections: Path, device: str) -> tuple[list[tuple[float, dict]], float, float, float]:
    """(time of each train event, the event), the time training began, the time the result came, the time it was asked."""
    events: list[tuple[float, dict]] = []
    started = time.perf_counter()
    finetune(FinetuneConfig(corrections=str(corrections), device=device),
             lambda e: events.append((time.perf_counter(), e)) if e["stage"] == "train" else None)
    end = time.perf_counter()
    first = events[0][0] - (events[1][0] - events[0][0])  # about when step 1 began
    return events, max(first, started), end, started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=["none", "base"], choices=["none", "base"])
    ap.add_argument("--corrections", type=int, nargs="+", default=[12], help="one run per count (the issue's range: 10 40)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    data = data_dir()
    pool, _ = stable_split(discover_pairs(data / "covid_v7labs"), 0.5, seed=1)
    work = Path(tempfile.mkdtemp(prefix="ft_eta_"))
    (work / "no_data").mkdir()
    lines = ["| corrections | base data | whole fine-tune (s) | steps | at step | ETA now (s) | old ETA (s) | really left (s) | now / real | old / real |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for count in args.corrections:
        corrections = link_subset(pool[:count], work / f"corrections_{count}")
        for mode in args.data:
            os.environ[HOME_ENV] = str(work / f"home_{count}_{mode}")  # the shipped model, a fresh registry each time
            os.environ[DATA_ENV] = str(data if mode == "base" else work / "no_data")
            events, began, end, asked = run(corrections, args.device)
            steps = events[0][1]["steps"]
            first_eta = next(i for i, (_, e) in enumerate(events) if e["eta_s"] is not None)
            for i in sorted({first_eta, steps // 4, steps // 2, (9 * steps) // 10}):
                at, event = events[i]
                old = (at - began) / (i + 1) * (steps - i - 1)
                left = end - at
                lines.append(f"| {count} | {mode} | {end - asked:.0f} | {steps} | {i + 1} | {event['eta_s']:.0f} | {old:.0f} | "
                             f"{left:.0f} | {event['eta_s'] / left:.2f} | {old / left:.2f} |")
                print(lines[-1], flush=True)
    publish("Fine-tune ETA against the time really left (bench/finetune_eta.py)", lines, not args.no_record)


if __name__ == "__main__":
    main()
