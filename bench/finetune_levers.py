"""Which protection against forgetting works without the base data on disk, and how fast is fine-tuning?

A new site: 12 covid_v7labs X-rays as corrections (their masks include the lung behind the
heart, another convention), scored on the other half of covid_v7labs; forgetting: the 12
Montgomery validation cases that default-2 never trained on. Each lever runs twice: with
``LUNG_UNET_DATA`` pointing at an empty folder (what a user has after ``pip install``) and at
the real data (replay and base validation). The wall time is ``finetune()``'s own: reading,
training, gating and registering. The candidate is scored whatever the gate decided.

    python bench/finetune_levers.py [--levers NAME ...] [--data none base] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import append_markdown  # noqa: E402

from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.nn.registry import Registry  # noqa: E402
from napari_lung_unet.settings import DATA_ENV, HOME_ENV, data_dir  # noqa: E402
from training.data import discover_pairs, split_of_run, stable_split  # noqa: E402
from training.evaluate import load_cases, mean_dice, score_cases  # noqa: E402
from training.finetune import FinetuneConfig, finetune  # noqa: E402

DEFAULTS = FinetuneConfig()
LEVERS: dict[str, FinetuneConfig] = {
    "130 steps x 5 (with base data: 2 corrections + 3 replay)": replace(DEFAULTS, steps=130, batch_size=5),
    "defaults (130 x 5 with base data, 60 x 3 without)": DEFAULTS,
    "shorter (60 x 3)": replace(DEFAULTS, steps=60, batch_size=3),
    "shorter + EWC 1.0": replace(DEFAULTS, steps=60, batch_size=3, ewc=1.0),
    "shorter, decoder normalisation only, lr 3e-3": replace(DEFAULTS, steps=60, batch_size=3, train_layers="norm", lr=3e-3),
    "shorter, last stage + head only": replace(DEFAULTS, steps=60, batch_size=3, train_layers="last"),
    "shorter, 2 corrections + 2 replay": replace(DEFAULTS, steps=60, batch_size=4, replay_ratio=1.0),
    "shorter, 2 + 2 replay, EWC 1.0": replace(DEFAULTS, steps=60, batch_size=4, replay_ratio=1.0, ewc=1.0),
}


def link_subset(pairs, root: Path) -> Path:  # type: ignore[no-untyped-def]
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for p in pairs:
        (root / "images" / p.image.name).symlink_to(p.image)
        (root / "masks" / p.masks[0].name).symlink_to(p.masks[0])
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    ap.add_argument("--data", nargs="+", default=["none", "base"], choices=["none", "base"])
    ap.add_argument("--corrections", type=int, default=12)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks.md")
    args = ap.parse_args()

    data = data_dir()
    pool, test_half = stable_split(discover_pairs(data / "covid_v7labs"), 0.5, seed=1)
    work = Path(tempfile.mkdtemp(prefix="ft_levers_"))
    corrections = link_subset(pool[: args.corrections], work / "corrections")
    empty = work / "no_data"
    empty.mkdir()
    base = Registry(work / "probe").load()
    _, mont_val = split_of_run(base.card, data / "montgomery")
    v7_cases, mont_cases = load_cases(test_half), load_cases(mont_val)

    def score(loaded) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        p = Predictor(loaded, device=args.device)
        return mean_dice(score_cases(p, v7_cases)), mean_dice(score_cases(p, mont_cases))

    v7_0, mont_0 = score(base)
    print(f"{base.card.version}: v7labs test half {v7_0:.4f} ({len(v7_cases)} cases), Montgomery val {mont_0:.4f} ({len(mont_cases)})", flush=True)
    rows = []
    for name in args.levers:
        for setting in args.data:
            home = work / f"home-{len(rows)}"
            os.environ[HOME_ENV] = str(home)
            os.environ[DATA_ENV] = str(empty if setting == "none" else data)
            cfg = replace(LEVERS[name], corrections=str(corrections), device=args.device, home=str(home))
            result = finetune(cfg)
            v7_1, mont_1 = score(Registry(home).load(result.version))
            est = result.after.get("estimated_forgetting", float("nan"))
            ft = Registry(home).card(result.version).extra["finetune"]
            rows.append((name, setting, ft["steps"], ft["batch_size"], cfg.ewc, (v7_1 - v7_0) * 100, (mont_1 - mont_0) * 100, est, result.seconds, result.status))
            print(f"{name} | data {setting}: v7labs {v7_1:.4f} ({(v7_1 - v7_0) * 100:+.2f} pts), Montgomery {mont_1:.4f} "
                  f"({(mont_1 - mont_0) * 100:+.2f} pts), estimate {est:.1f}, {result.seconds:.0f} s, {result.status}", flush=True)
    os.environ[DATA_ENV] = str(data)
    if not args.no_record:
        lines = [
            f"Start: `{base.card.version}`; {args.corrections} v7labs corrections; scored on the v7labs test half ({len(v7_cases)} cases, "
            f"Dice {v7_0:.4f}) and the Montgomery validation split ({len(mont_cases)} cases, Dice {mont_0:.4f}). 'none': LUNG_UNET_DATA is "
            "an empty folder; 'base': the real data (replay + base validation). Time: the whole finetune() call.",
            "",
            "| lever | base data | steps × batch | EWC λ | v7labs gain (pts) | Montgomery change (pts) | forgetting estimate (nats per pixel) | time (s) | gate |",
            "|---|---|---|---|---|---|---|---|---|",
            *(f"| {n} | {s} | {st} × {b} | {e:g} | {g:+.2f} | {m:+.2f} | {est:.2e} | {t:.0f} | {status} |" for n, s, st, b, e, g, m, est, t, status in rows),
        ]
        append_markdown("Fine-tuning levers, with and without base data (bench/finetune_levers.py)", " ".join(["python", *sys.argv]), lines)


if __name__ == "__main__":
    main()
