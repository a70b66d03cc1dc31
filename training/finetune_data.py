"""What a fine-tune learns from and is checked on: the corrections, the base data (when it is on
disk), the user's uncorrected images, and the reference shipped beside the parent's weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.store.corrections import sha256_file
from napari_lung_unet.images.read import IMAGE_SUFFIXES, ImageError, read_xray
from napari_lung_unet.nn.preprocess import prepare_input
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.settings import dataset_path

from .data import DatasetError, Pair, discover_pairs, split_of_run, stable_split
from .fisher import load_fisher


@dataclass
class Reference:
    """The parent's weights and the Fisher information of the original training data."""

    anchor: dict[str, torch.Tensor]
    fisher: dict[str, torch.Tensor]
    source: str  # which version's Fisher file, for the gate's words
    pixels: int  # pixels of one input image: the drift is reported per pixel, so one budget fits every input size


def split_corrections(pairs: list[Pair], holdout_fraction: float, seed: int) -> tuple[list[Pair], list[Pair], bool]:
    """(train, held out, whether the held-out ones were trained on too).

    At least one case is held out and one trained on; a single correction is both, and the gate
    then says its check shows only that the correction was learnt."""
    if len(pairs) < 2:
        return pairs, pairs, True
    train, holdout = stable_split(pairs, holdout_fraction, seed)
    if not holdout:
        holdout, train = train[-1:], train[:-1]
    if not train:
        train, holdout = holdout[:-1], holdout[-1:]
    return train, holdout, False


def base_roots(replay: list[str] | None, parent: ModelCard) -> list[Path]:
    """Folders of the parent's original datasets that are on this disk (none after ``pip install``)."""
    if replay is not None:
        return [Path(p) for p in replay]
    roots = [dataset_path(name) for name in parent.training_data if not name.startswith("corrections:")]
    return [r for r in roots if r.is_dir()]


def base_split(roots: list[Path], parent: ModelCard) -> tuple[list[Pair], list[Pair]]:
    train, val = [], []
    for root in roots:
        tr, va = split_of_run(parent, root)
        train += tr
        val += va
    return train, val


def every(pairs: list, limit: int) -> list:
    """A fixed, evenly spread subset: the same cases every run, covering every dataset."""
    if len(pairs) <= limit:
        return pairs
    step = len(pairs) / limit
    return [pairs[int(i * step)] for i in range(limit)]


def fair_subset(pairs: list[Pair], limit: int) -> list[Pair]:
    """At most ``limit`` cases, shared between datasets so that a small one keeps all its cases.

    The gate checks each dataset on its own; an even spread over 12 Montgomery + 65 Shenzhen
    validation cases kept only 8 of Montgomery's, too few for a one-point rule.
    """
    groups: dict[str, list[Pair]] = {}
    for p in pairs:
        groups.setdefault(p.dataset, []).append(p)
    kept: dict[str, list[Pair]] = {}
    left = limit
    for i, (name, group) in enumerate(sorted(groups.items(), key=lambda item: len(item[1]))):
        kept[name] = every(group, left // (len(groups) - i))
        left -= len(kept[name])
    return [p for name in groups for p in kept[name]]


def unlabeled_images(folders: list[str], exclude: list[Pair], limit: int) -> list[np.ndarray]:
    """Up to ``limit`` readable X-rays from the user's folders, evenly spread, minus the corrected
    ones (same content, whatever the file is called). Unreadable files are skipped: they are
    optional extra evidence, and the worklist already reports them."""
    corrected = {sha256_file(p.image) for p in exclude}
    files: list[Path] = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise DatasetError(f"--unlabeled {folder}: not a folder")
        files += sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                        and not any(part.startswith(".") for part in f.relative_to(root).parts))
    images = []
    for f in every(files, 2 * limit):
        if len(images) >= limit:
            break
        try:
            if sha256_file(f) in corrected:
                continue
            images.append(read_xray(f).pixels)
        except (ImageError, OSError):
            continue
    return images


def prepare_unlabeled(images: list[np.ndarray], card: ModelCard) -> torch.Tensor | None:
    if not images:
        return None
    return torch.stack([prepare_input(im, card.input_size, card.normalisation) for im in images])


def find_reference(registry: Registry, parent: ModelCard, parent_model: torch.nn.Module) -> Reference | None:
    """The Fisher file of the parent or its nearest ancestor that has one (a fine-tuned version
    has none of its own: the original data is what it must not forget), anchored at the parent."""
    version: str | None = parent.version
    seen: set[str] = set()
    while version and version not in seen:
        seen.add(version)
        try:
            folder = registry.path_of(version)
            card = registry.card(version)
        except ValueError:
            return None
        fisher = load_fisher(folder)
        if fisher is not None:
            anchor = {k: v.detach().clone() for k, v in parent_model.named_parameters()}
            return Reference(anchor, fisher, f"the Fisher information of {version}'s training data", parent.input_size**2)
        version = card.parent
    return None

