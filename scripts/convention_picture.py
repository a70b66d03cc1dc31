"""The README's picture of the two lung conventions, from the shipped reference set (CC BY images only).

    python scripts/convention_picture.py [--case CASE_ID] [--out docs/screenshots/conventions.png]

Left: lung-fields (the shipped model's proposal in that convention, as stored in the reference set).
Right: whole-lung (V7 Labs' manual mask). The case defaults to the clearest example (see _most_typical).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage.io import imread  # noqa: E402
from skimage.morphology import convex_hull_image  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1] / "napari_lung_unet" / "reference"


def _mask(kind: str, case: str) -> np.ndarray:
    return imread(REFERENCE / kind / f"{case}.png") > 0


def _most_typical() -> str:
    """The case whose extra whole-lung area is largest and lies between the lung fields (inside their
    convex hull), so that it shows the convention rather than a model's miss on a diseased lung."""
    cases = sorted(p.stem for p in (REFERENCE / "images").glob("*.png"))

    def between(case: str) -> float:
        fields = _mask("lung-fields", case)
        extra = _mask("whole-lung", case) & ~fields
        inside = int((extra & convex_hull_image(fields)).sum())
        return inside * inside / max(int(extra.sum()), 1)

    return max(cases, key=between)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "screenshots" / "conventions.png"))
    args = ap.parse_args()
    case = args.case or _most_typical()
    image = imread(REFERENCE / "images" / f"{case}.png")
    fields, whole = _mask("lung-fields", case), _mask("whole-lung", case)
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.3), dpi=100)
    for ax, mask, title, colour in ((axes[0], fields, "lung-fields", "tab:blue"), (axes[1], whole, "whole-lung", "tab:orange")):
        ax.imshow(image, cmap="gray")
        ax.contourf(mask, levels=[0.5, 1.5], colors=[colour], alpha=0.35)
        ax.contour(mask, levels=[0.5], colors=[colour], linewidths=1.2)
        if mask is whole:  # what whole-lung adds: the lung behind the heart and below the domes
            ax.contour(whole & ~fields, levels=[0.5], colors=["red"], linewidths=0.8, linestyles="dashed")
        ax.set_title(f"{title}: {mask.mean() * 100:.0f} % of the image", fontsize=10)
        ax.axis("off")
    fig.suptitle(f"covid_v7labs {case} (CC BY, see napari_lung_unet/reference/attribution.csv); "
                 "red dashes: lung behind the heart and below the domes", fontsize=8)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out} ({case})")


if __name__ == "__main__":
    main()
