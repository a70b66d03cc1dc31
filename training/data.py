"""Find image/mask pairs in the supported layouts and load them as in-memory tensors.

Layouts:
- the seed tutorial's Montgomery layout: ``CXR_png/*.png`` + ``ManualMask/{leftMask,rightMask}/*.png``;
- a flat ``images/`` + ``masks/`` folder (``../shared/data/*``);
- the corrections store written by the napari widget (flat layout plus ``records/``).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from napari_lung_unet.nn.card import ModelCard, Normalisation
from napari_lung_unet.images.conventions import DEFAULT_CONVENTION, WHOLE_LUNG, check_convention
from napari_lung_unet.store.corrections import RECORDS, CorrectionsStore
from napari_lung_unet.images.read import IMAGE_SUFFIXES, ImageError, read_xray
from napari_lung_unet.images.masks import MaskError, checked_mask
from napari_lung_unet.nn.preprocess import prepare_input, resize
from napari_lung_unet.text import progress_bar


# The split every training run makes unless told otherwise; cards of older runs omit them.
DEFAULT_VAL_FRACTION = 0.15
DEFAULT_SPLIT_SEED = 0


# How the shared datasets are drawn: a dataset's convention, then the cases drawn the other way
# (Shenzhen mixes both by annotation batch; training/case_conventions.csv says how they were found).
DATASET_CONVENTIONS = {"covid_v7labs": WHOLE_LUNG}
CASE_CONVENTIONS = Path(__file__).with_name("case_conventions.csv")


class DatasetError(ValueError):
    """A dataset folder is missing, empty or inconsistent; the message names the file."""


@dataclass(frozen=True)
class Pair:
    case_id: str
    image: Path
    masks: tuple[Path, ...]  # one mask, or the seed's left+right masks that are summed
    dataset: str = ""
    convention: str = DEFAULT_CONVENTION  # how this case's mask is drawn (napari_lung_unet/images/conventions.py)
    group: str = ""  # the patient, where the dataset's manifest names one: a patient's images stay on one side of a split


def _stems(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def discover_pairs(root: str | Path, convention: str | None = None) -> list[Pair]:
    """Every image/mask pair under ``root``, each tagged with its mask's convention: ``convention``
    for all of them when given, else the store's record or the known table above."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    name = root.name
    if (root / RECORDS).is_dir():
        store = CorrectionsStore(root)
        # each case checked against its record: an inconsistent one is refused by name (CorrectionsError)
        cases = [store.case(i) for i in store.case_ids()]
        pairs = [Pair(c.case_id, c.image, (c.mask,), name, convention=c.convention) for c in cases]
    elif (root / "CXR_png").is_dir():
        images = _stems(root / "CXR_png")
        left, right = root / "ManualMask" / "leftMask", root / "ManualMask" / "rightMask"
        pairs = []
        for stem, img in images.items():
            masks = (left / f"{stem}.png", right / f"{stem}.png")
            for m in masks:
                if not m.is_file():
                    raise DatasetError(f"{img}: no mask {m}")
            pairs.append(Pair(stem, img, masks, name))
    elif (root / "images").is_dir() and (root / "masks").is_dir():
        images, masks = _stems(root / "images"), _stems(root / "masks")
        patients = _patients(root / "manifest.csv")
        pairs = []
        for stem, img in images.items():
            if stem not in masks:
                raise DatasetError(f"{img}: no matching mask named {stem}.* in {root / 'masks'}")
            pairs.append(Pair(stem, img, (masks[stem],), name, group=patients.get(stem, "")))
    else:
        raise DatasetError(
            f"{root}: not a dataset; expected images/ + masks/, a corrections store, or CXR_png/ + ManualMask/"
        )
    if not pairs:
        raise DatasetError(f"{root}: dataset is empty (no image/mask pairs found)")
    if convention is not None:
        return tag_conventions(pairs, {}, check_convention(convention))
    if (root / RECORDS).is_dir():
        return pairs
    return tag_conventions(pairs, _known_cases(), DATASET_CONVENTIONS.get(name, DEFAULT_CONVENTION))


def known_datasets() -> set[str]:
    """The dataset names whose convention this package knows (:data:`DATASET_CONVENTIONS` and the per-case table)."""
    return set(DATASET_CONVENTIONS) | {dataset for dataset, _ in _known_cases()} | {"montgomery"}


def _known_cases() -> dict[tuple[str, str], str]:
    return read_case_conventions(CASE_CONVENTIONS) if CASE_CONVENTIONS.is_file() else {}


def _patients(manifest: Path) -> dict[str, str]:
    """case_id -> patient id from a ``manifest.csv`` with a ``patientid`` column (covid_v7labs has one)."""
    if not manifest.is_file():
        return {}
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = csv.DictReader(fh)
        if "patientid" not in (rows.fieldnames or []):
            return {}
        return {r["case_id"]: f"patient-{r['patientid']}" for r in rows if r.get("patientid")}


def split_convention(spec: str) -> tuple[str, str | None]:
    """``PATH@whole-lung`` -> (PATH, "whole-lung"); a plain PATH -> (PATH, None)."""
    path, sep, name = spec.rpartition("@")
    if not sep or "/" in name:
        return spec, None
    return path, check_convention(name)


def read_case_conventions(path: str | Path) -> dict[tuple[str, str], str]:
    """(dataset, case_id) -> convention, from a CSV with those columns (``#`` lines are comments)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        try:
            return {(r["dataset"], r["case_id"]): check_convention(r["convention"]) for r in rows}
        except KeyError as exc:
            raise DatasetError(f"{path}: needs the columns dataset, case_id, convention (missing {exc})") from None


def tag_conventions(pairs: list[Pair], overrides: dict[tuple[str, str], str], default: str | None = None) -> list[Pair]:
    """Each pair with its convention: a per-case override, else ``default``, else the pair's own."""
    return [replace(p, convention=overrides.get((p.dataset, p.case_id), default or p.convention)) for p in pairs]


def read_mask(pair: Pair, shape: tuple[int, int]) -> np.ndarray:
    """Binary lung mask (any label > 0), summed over the seed's left/right files; each file checked first."""
    total = np.zeros(shape, dtype=bool)
    for path in pair.masks:
        try:
            import imageio.v3 as iio

            m = np.asarray(iio.imread(path))
        except Exception as exc:
            raise DatasetError(f"{path}: unreadable mask ({type(exc).__name__}: {exc})") from None
        try:
            m = checked_mask(m, shape, path)
        except MaskError as exc:
            raise DatasetError(f"{exc} ({pair.image.name})") from None
        total |= m > 0
    return total


def read_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    try:
        image = read_xray(pair.image).pixels
    except ImageError as exc:
        raise DatasetError(str(exc)) from None
    return image, read_mask(pair, image.shape)


def stable_split(pairs: list[Pair], val_fraction: float, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """Deterministic train/val split by hashing case ids: independent of file order and machine."""
    train, val = [], []
    for p in pairs:
        h = int(hashlib.sha1(f"{seed}:{p.dataset}:{p.group or p.case_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (val if h < val_fraction else train).append(p)
    return train, val


def split_of_run(card: ModelCard, root: str | Path) -> tuple[list[Pair], list[Pair]]:
    """The train/validation split that ``card``'s training run made of the dataset at ``root``."""
    tc = card.extra.get("train_config", {})
    return stable_split(discover_pairs(root), float(tc.get("val_fraction", DEFAULT_VAL_FRACTION)), int(tc.get("seed", DEFAULT_SPLIT_SEED)))


@dataclass
class ArrayData:
    images: torch.Tensor  # N×S×S float32 in [0, 1]
    masks: torch.Tensor  # N×S×S float32 in {0, 1}
    case_ids: list[str]
    outputs: torch.Tensor | None = None  # N int64: the model output (convention) each mask trains; None: output 0

    def output_of(self, i: int) -> int:
        return 0 if self.outputs is None else int(self.outputs[i])

    def __len__(self) -> int:
        return len(self.case_ids)


def load_arrays(
    pairs: list[Pair], size: int, norm: Normalisation, show_progress: bool = True, conventions: list[str] | None = None
) -> ArrayData:
    """Preload every pair at the training size: 529 images at 256² is 140 MB, and epochs stay compute-bound."""
    images, masks = [], []
    bar = progress_bar(len(pairs), "loading", "images", disable=not show_progress, leave=False)
    for pair in pairs:
        image, mask = read_pair(pair)
        images.append(prepare_input(image, size, norm))
        masks.append((resize(mask.astype(np.float32), (size, size)) > 0.5).float())
        bar.update(1)
    bar.close()
    if not images:
        raise DatasetError("no training pairs")
    # a case in a convention the model has no output for is refused, never trained as another one
    outputs = None if conventions is None else torch.tensor([_output(conventions, p) for p in pairs], dtype=torch.int64)
    return ArrayData(torch.stack(images), torch.stack(masks), [p.case_id for p in pairs], outputs)


def _output(conventions: list[str], pair: Pair) -> int:
    if pair.convention not in conventions:
        raise DatasetError(f"{pair.dataset}/{pair.case_id}: drawn as {pair.convention}, which the model has no output for ({', '.join(conventions)})")
    return conventions.index(pair.convention)
