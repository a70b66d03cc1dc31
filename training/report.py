"""Pictures for ``lung-unet evaluate --report``: worst cases side by side and a Dice histogram."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_lung_unet.store.atomic import atomic_write
from napari_lung_unet.nn.predict import Predictor

from .evaluate import CaseScore, LoadedCase


def _figure_to_png(fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png", bbox_inches="tight"))
    plt.close(fig)
    return path


def worst_cases_grid(predictor: Predictor, cases: list[LoadedCase], scores: list[CaseScore], path: Path, n: int = 6) -> Path:
    """Input / true mask / predicted mask / disagreement for the ``n`` lowest-Dice cases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_id = {c.pair.case_id: c for c in cases}
    worst = sorted(scores, key=lambda s: s.dice)[:n]
    fig, axes = plt.subplots(len(worst), 4, figsize=(12, 3 * len(worst)), squeeze=False)
    for row, score in zip(axes, worst):
        case = by_id[score.case_id]
        pred = predictor.predict(case.image).labels > 0
        diff = np.zeros((*pred.shape, 3), np.float32)
        diff[pred & ~case.mask] = (1, 0.2, 0.2)  # false positive: red
        diff[~pred & case.mask] = (0.2, 0.4, 1)  # false negative: blue
        for ax, img, title in zip(
            row,
            (case.image, case.mask, pred, diff),
            (f"{score.case_id}", "true mask", f"predicted (Dice {score.dice:.3f})", "red: extra, blue: missed"),
        ):
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    return _figure_to_png(fig, path)


def dice_histogram(scores: list[CaseScore], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    dice = [s.dice for s in scores]
    ax.hist(dice, bins=min(30, max(5, len(dice) // 2)), color="#4a7ab5")
    ax.axvline(float(np.mean(dice)), color="k", linestyle="--", label=f"mean {np.mean(dice):.4f}")
    ax.set_xlabel("Dice per case")
    ax.set_ylabel("cases")
    ax.legend()
    return _figure_to_png(fig, path)
