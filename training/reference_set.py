"""The reference set shipped with the package: what a fine-tune is checked on after ``pip install``.

32 CC BY chest X-rays from one COVID-19 collection (napari_lung_unet/reference, built by
scripts/build_reference.py), each with V7 Labs' whole-lung mask and the shipped model's own
lung-fields proposal. It tells whether a candidate still draws both conventions as its parent did
on real X-rays; it cannot tell how the candidate does at the user's own site, on other scanners
or on other diseases: it is not the user's data, and in lung-fields it measures agreement with the
parent, not accuracy.
"""

from __future__ import annotations

from pathlib import Path

from napari_lung_unet.images.conventions import NAMES

from .data import Pair
from .evaluate import LoadedCase, load_cases

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "napari_lung_unet" / "reference"


def reference_pairs(conventions: list[str], root: Path = REFERENCE_DIR) -> list[Pair]:
    """One pair per image and per convention the model knows (and the set has masks for)."""
    images = sorted((root / "images").glob("*.png")) if (root / "images").is_dir() else []
    pairs = []
    for convention in (c for c in NAMES if c in conventions):
        for image in images:
            mask = root / convention / image.name
            if mask.is_file():
                pairs.append(Pair(image.stem, image, (mask,), "reference", convention=convention))
    return pairs


def reference_cases(conventions: list[str], limit: int = 0) -> list[LoadedCase]:
    pairs = reference_pairs(conventions)
    if limit:
        per = {c: [p for p in pairs if p.convention == c][:limit] for c in conventions}
        pairs = [p for c in conventions for p in per[c]]
    return load_cases(pairs)
