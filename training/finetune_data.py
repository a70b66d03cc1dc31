"""What a fine-tune learns from and is checked on: the corrections, the base data (when it is on
disk), the user's uncorrected images, and the reference shipped beside the parent's weights."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.store.corrections import RECORDS, CorrectionsStore, sha256_file
from napari_lung_unet.images.read import IMAGE_SUFFIXES, ImageError, read_xray
from napari_lung_unet.nn.preprocess import prepare_input
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.settings import dataset_path

from .data import DatasetError, Pair, discover_pairs, split_of_run
from .fisher import load_fisher


@dataclass
class Reference:
    """The parent's weights and the Fisher information of the original training data."""

    anchor: dict[str, torch.Tensor]
    fisher: dict[str, torch.Tensor]
    source: str  # which version's Fisher file, for the gate's words
    pixels: int  # pixels of one input image: the drift is reported per pixel, so one budget fits every input size


HOLDOUT_FRACTION = 0.25  # a quarter held back: from 4 corrections up at least 70 % are trained on
LUNG_FIELDS = "lung-fields"  # the convention of every record written before a record named its own


@dataclass(frozen=True)
class SplitCase:
    """What the held-back choice looks at for one correction."""

    key: str  # names this correction's content: case id and image sha256 (a re-accept is a new correction)
    source: str = ""  # where it came from: the folder (site, worklist) of its source image
    convention: str = LUNG_FIELDS


@dataclass(frozen=True)
class Holdout:
    """Indices into the cases given: trained on, held back to check the candidate."""

    train: tuple[int, ...]
    held: tuple[int, ...]
    trained_on_held: bool  # a single correction is both: its check then shows only that it was learnt


def holdout_count(n: int, fraction: float = HOLDOUT_FRACTION) -> int:
    """A quarter of ``n`` rounded down, at least 1, and never every case (one is kept to train on)."""
    if n < 2:
        return n
    return min(n - 1, max(1, math.floor(n * fraction + 1e-9)))


def choose_holdout(cases: Sequence[SplitCase], fraction: float = HOLDOUT_FRACTION) -> Holdout:
    """The corrections held back to check a fine-tune: the same for the same corrections, in any order.

    ``holdout_count`` of them, shared between groups of one source and one convention in proportion to
    their sizes (largest remainders; ties to the larger group, then by name), so the check scores every
    site and convention the candidate was trained on instead of whichever a coin favoured. Within a
    group the cases are ranked by a hash of their key: no random number, no dependence on file order.
    """
    n = len(cases)
    if n == 0:
        raise ValueError("no corrections to split")
    if n == 1:
        return Holdout((0,), (0,), True)
    k = holdout_count(n, fraction)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, case in enumerate(cases):
        groups.setdefault((case.source, case.convention), []).append(i)
    exact = {g: len(members) * k / n for g, members in groups.items()}
    quota = {g: math.floor(e + 1e-9) for g, e in exact.items()}
    by_remainder = sorted(groups, key=lambda g: (-(exact[g] - quota[g]), -len(groups[g]), g))
    for g in by_remainder[: k - sum(quota.values())]:
        quota[g] += 1
    held: list[int] = []
    for g, members in groups.items():
        ranked = sorted(members, key=lambda i: (_rank(cases[i].key), i))
        held += ranked[: quota[g]]
    held_set = set(held)
    return Holdout(tuple(i for i in range(n) if i not in held_set), tuple(sorted(held_set)), False)


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def mixed_conventions(cases: Sequence[SplitCase]) -> str | None:
    """A warning when the corrections are drawn in more than one convention, else None."""
    counts: dict[str, int] = {}
    for case in cases:
        counts[case.convention] = counts.get(case.convention, 0) + 1
    if len(counts) < 2:
        return None
    parts = ", ".join(f"{counts[c]} {c}" for c in sorted(counts))
    return (f"your corrections mix conventions ({parts}): each is held back in proportion, and the held-out "
            "Dice averages over both; accept a site's cases in the convention it chose")


def correction_pairs(root: Path, convention: str | None = None) -> tuple[list[Pair], list[Pair]]:
    """(the corrections to fine-tune on, those set aside because another convention was asked).

    A corrections store's record says how its case is drawn, and that is never overridden: with
    ``convention`` only the store's cases accepted in it are taken, the others are set aside (and
    named in the summary). A plain images/ + masks/ folder says nothing, so ``convention`` tags all
    of it. Without ``convention``, each case has its own: its record's, or the known datasets' table.
    """
    if convention is None or not (root / RECORDS).is_dir():
        return discover_pairs(root, convention), []
    pairs = discover_pairs(root)
    return [p for p in pairs if p.convention == convention], [p for p in pairs if p.convention != convention]


def correction_cases(pairs: Sequence[Pair]) -> list[SplitCase]:
    """What :func:`choose_holdout` needs of each correction, from its store record when it has one.

    A store case is named by its case id and image hash (a re-accepted case is another correction),
    comes from its source image's folder and is drawn in its record's convention; a case of a plain
    images/ + masks/ folder comes from that folder, in lung fields.
    """
    cases = []
    for pair in pairs:
        root = pair.image.parent.parent
        if (root / RECORDS).is_dir():
            record = CorrectionsStore(root).record(pair.case_id)
            convention = getattr(record, "convention", None) or LUNG_FIELDS
            cases.append(SplitCase(f"{pair.case_id}:{record.image_sha256}", str(Path(record.source_path).parent), convention))
        else:
            cases.append(SplitCase(f"{pair.dataset}:{pair.case_id}", pair.dataset, pair.convention))
    return cases


def split_corrections(pairs: list[Pair], holdout_fraction: float = HOLDOUT_FRACTION) -> tuple[list[Pair], list[Pair], bool]:
    """(train, held out, whether the held-out ones were trained on too): see :func:`choose_holdout`."""
    split = choose_holdout(correction_cases(pairs), holdout_fraction)
    return [pairs[i] for i in split.train], [pairs[i] for i in split.held], split.trained_on_held


def lineage_trained(registry: Registry, card: ModelCard) -> set[str]:
    """Case ids of the corrections that ``card``'s version or any fine-tuned ancestor trained on."""
    out: set[str] = set()
    seen: set[str] = set()
    known = registry.version_dirs()
    current: ModelCard | None = card
    while current is not None and current.version not in seen:
        seen.add(current.version)
        out |= set(current.extra.get("finetune", {}).get("train_cases", []))
        current = registry.card(current.parent) if current.parent and current.parent in known else None
    return out


def split_for_parent(pairs: list[Pair], fraction: float, trained_before: set[str]) -> tuple[list[Pair], list[Pair], bool]:
    """:func:`split_corrections`, but the held-out corrections are ones the parent never trained on, where
    there are any: in the loop each fine-tune starts from the last, and a case an earlier one learnt
    scores high before as after, hiding this one's gain. bench/new_site.py, 37 corrections after a
    fine-tune on 20: the candidate gained 2.4 points on the site's next cases, but its 9 held-out
    corrections (some learnt by its parent) showed no measurable gain."""
    fresh = [p for p in pairs if p.case_id not in trained_before]
    if not fresh or len(fresh) == len(pairs) or len(pairs) < 2:
        return split_corrections(pairs, fraction)
    k = holdout_count(len(pairs), fraction)
    _, held, _ = split_corrections(fresh, min(1.0, k / len(fresh))) if len(fresh) > 1 else ([], fresh, True)
    chosen = {id(p) for p in held}
    return [p for p in pairs if id(p) not in chosen], held, False


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


def replay_subset(pairs: list[Pair], limit: int, conventions: set[str], match: float) -> list[Pair]:
    """``limit`` base cases to replay, evenly spread; a share ``match`` of them drawn in ``conventions``
    (the corrections'), where the base data has that many. Those are the base cases the gate checks
    the corrections' convention on: an even spread gave a new site's 7 whole-lung corrections only a
    few of them, and the candidate lost 0.7-1.0 points there (docs/benchmarks.md). The rest is spread
    evenly: sharing it between datasets (Montgomery replayed as often as Shenzhen) was measured and did
    not keep Montgomery (docs/benchmarks.md, "Fine-tune levers at a new site, round 3")."""
    same = [p for p in pairs if p.convention in conventions]
    n_same = min(len(same), round(match * limit))
    if n_same == 0 or len(pairs) <= limit or len(same) == len(pairs):  # nothing to favour: the even spread
        return every(pairs, limit)
    chosen = every(same, n_same)
    taken = set(chosen)
    return chosen + every([p for p in pairs if p not in taken], limit - n_same)


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

