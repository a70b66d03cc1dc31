"""Does fine-tuning on corrections adapt the model to a new site without forgetting the old one?

Starts from the bundled default model, scores a fixed half of covid_v7labs (whose masks include
the lung behind the heart: a different convention), fine-tunes on 10 and on 20 cases of the
other half as "corrections", and scores again on v7labs and on the Montgomery validation split.

    python bench/finetune_adaptation.py [--sizes 10 20] [--device cpu] [--steps N] [--lr X]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import append_markdown  # noqa: E402

from napari_lung_unet.predict import Predictor  # noqa: E402
from napari_lung_unet.registry import Registry  # noqa: E402
from napari_lung_unet.settings import HOME_ENV, data_dir  # noqa: E402
from training.data import discover_pairs, stable_split  # noqa: E402
from training.evaluate import load_cases, mean_dice, score_cases  # noqa: E402
from training.finetune import FinetuneConfig, finetune  # noqa: E402
from training.data import split_of_run  # noqa: E402


def link_subset(pairs, root: Path) -> Path:  # type: ignore[no-untyped-def]
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for p in pairs:
        (root / "images" / p.image.name).symlink_to(p.image)
        (root / "masks" / p.masks[0].name).symlink_to(p.masks[0])
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 20])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=FinetuneConfig.steps)
    ap.add_argument("--lr", type=float, default=FinetuneConfig.lr)
    ap.add_argument("--batch-size", type=int, default=FinetuneConfig.batch_size)
    ap.add_argument("--replay-ratio", type=float, default=FinetuneConfig.replay_ratio)
    ap.add_argument("--train-layers", default=FinetuneConfig.train_layers)
    ap.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks.md")
    args = ap.parse_args()

    data = data_dir()
    v7 = discover_pairs(data / "covid_v7labs")
    pool, test_half = stable_split(v7, 0.5, seed=1)
    work = Path(tempfile.mkdtemp(prefix="ft_bench_"))
    os.environ[HOME_ENV] = str(work / "home")
    registry = Registry()
    base = registry.load()
    _, mont_val = split_of_run(base.card, data / "montgomery")
    test_cases, mont_cases = load_cases(test_half), load_cases(mont_val)

    def score(predictor: Predictor) -> tuple[float, float]:
        return mean_dice(score_cases(predictor, test_cases)), mean_dice(score_cases(predictor, mont_cases))

    v7_0, mont_0 = score(Predictor(base, device=args.device))
    print(f"default {base.card.version}: v7labs half Dice {v7_0:.4f}, Montgomery val Dice {mont_0:.4f}")
    rows = []
    for n in args.sizes:
        corrections = link_subset(pool[:n], work / f"corr{n}")
        t0 = time.perf_counter()
        result = finetune(FinetuneConfig(corrections=str(corrections), base_version=base.card.version, steps=args.steps,
                                         batch_size=args.batch_size, lr=args.lr, replay_ratio=args.replay_ratio, train_layers=args.train_layers,
                                         device=args.device))
        wall = time.perf_counter() - t0
        v7_1, mont_1 = score(Predictor(registry.load(result.version), device=args.device))
        rows.append((n, v7_1, (v7_1 - v7_0) * 100, mont_1, (mont_1 - mont_0) * 100, wall, result.promoted))
        print(f"{n} corrections: v7labs {v7_0:.4f} -> {v7_1:.4f} ({(v7_1 - v7_0) * 100:+.2f} pts), "
              f"Montgomery {mont_0:.4f} -> {mont_1:.4f} ({(mont_1 - mont_0) * 100:+.2f} pts), {wall:.0f} s, "
              f"{'promoted' if result.promoted else 'rejected'}: {result.reason}")

    if not args.no_record:
        lines = [
            f"Start: `{base.card.version}`, v7labs test half {len(test_cases)} cases (Dice {v7_0:.4f}), Montgomery val {len(mont_cases)} cases (Dice {mont_0:.4f}).",
            f"Settings: steps {args.steps}, batch {args.batch_size}, lr {args.lr}, replay ratio {args.replay_ratio}, train layers {args.train_layers}, device {args.device}.",
            "",
            "| corrections | v7labs Dice | gain (pts) | Montgomery Dice | change (pts) | wall time (s) | gate |",
            "|---|---|---|---|---|---|---|",
            *(f"| {n} | {a:.4f} | {g:+.2f} | {m:.4f} | {c:+.2f} | {w:.0f} | {'promoted' if p else 'rejected'} |" for n, a, g, m, c, w, p in rows),
        ]
        append_markdown("Fine-tuning adaptation (bench/finetune_adaptation.py)", " ".join(["python", *sys.argv]), lines)


if __name__ == "__main__":
    main()
