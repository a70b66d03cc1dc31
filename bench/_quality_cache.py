"""The validation split's network outputs and true Dice, computed once and cached for the quality benches.

For each validation case of each shared dataset (the bundled model's own split, ``split_of_run``),
in the convention its mask is drawn in: the probability at the network's size for that convention,
for the other convention and for the horizontally flipped image, the true Dice of the product's
labels at the original size, and the true mask at the network's size. Cached in
``/work/main/cache/qc/<model version>.npz`` (git-ignored; derived from Montgomery/Shenzhen pixels,
so never committed).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from napari_lung_unet.images.conventions import LUNG_FIELDS, WHOLE_LUNG
from napari_lung_unet.nn.model_io import LoadedModel
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.nn.preprocess import resize
from napari_lung_unet.settings import data_dir
from training.data import discover_pairs, read_pair, split_of_run
from training.metrics import binary_metrics

DATASETS = ("montgomery", "shenzhen", "covid_v7labs")
CACHE = Path(os.environ.get("LUNG_UNET_QC_CACHE", "/work/main/cache/qc"))


def _dice(labels: np.ndarray, mask: np.ndarray) -> float:
    m = binary_metrics(torch.from_numpy(labels > 0)[None], torch.from_numpy(mask)[None])
    return float(m["dice"][0])


def validation_outputs(loaded: LoadedModel, cache: Path = CACHE, split: str = "val",
                       datasets: tuple[str, ...] = DATASETS) -> dict[str, np.ndarray]:
    """Arrays keyed by name, one row per validation case (see the module docstring). ``split="train"``:
    the training split's cases instead, own convention only (no flip, no other convention); ``split="all"``:
    every case of ``datasets`` (a site a leave-one-site-out model never saw: its errors are out of sample)."""
    tag = "" if split == "val" else f"-{split}" + (f"-{'+'.join(datasets)}" if split == "all" else "")
    path = cache / f"{loaded.card.version}{tag}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    predictor = Predictor(loaded, device="cpu")
    rows: dict[str, list] = {k: [] for k in ("case_id", "dataset", "convention", "dice", "prob", "other", "flip", "truth", "shape")}
    for name in datasets:
        if split == "all":
            pairs = discover_pairs(data_dir() / name)
        else:
            train, val = split_of_run(loaded.card, data_dir() / name)
            pairs = val if split == "val" else train
        for pair in pairs:
            image, mask = read_pair(pair)
            own = predictor.for_convention(pair.convention)
            other = predictor.for_convention(WHOLE_LUNG if pair.convention == LUNG_FIELDS else LUNG_FIELDS)
            x, shape = own.prepare(image)
            prob = own.network(x[None])[0]
            rows["prob"].append(prob.astype(np.float16))
            if split == "val":
                rows["other"].append(other.network(x[None])[0].astype(np.float16))
                rows["flip"].append(own.network(x.flip(-1)[None])[0][:, ::-1].astype(np.float16))
            rows["dice"].append(_dice(own.finish(prob, shape).labels, mask))
            rows["truth"].append((resize(mask.astype(np.float32), prob.shape).numpy() > 0.5))
            rows["shape"].append(shape)
            rows["case_id"].append(pair.case_id)
            rows["dataset"].append(name)
            rows["convention"].append(pair.convention)
            print(f"{name} {pair.case_id} {pair.convention} dice {rows['dice'][-1]:.4f}", flush=True)
    arrays = {k: np.asarray(v) for k, v in rows.items() if len(v)}
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return arrays
