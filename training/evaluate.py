"""Score a model end to end (read, predict, post-process at the original size) against true masks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from napari_lung_unet.store.atomic import atomic_write_csv
from napari_lung_unet.nn.predict import Predictor

from .data import Pair, read_pair
from .metrics import METRIC_NAMES, binary_metrics


@dataclass
class CaseScore:
    case_id: str
    dataset: str
    convention: str
    dice: float
    iou: float
    precision: float
    recall: float


@dataclass
class LoadedCase:
    """An image and its mask read once, so a gate can score parent and candidate on identical data."""

    pair: Pair
    image: np.ndarray
    mask: np.ndarray


def load_cases(pairs: list[Pair]) -> list[LoadedCase]:
    return [LoadedCase(p, *read_pair(p)) for p in pairs]


def score_cases(
    predictor: Predictor, cases: list[LoadedCase], progress: Callable[[int, int], None] | None = None
) -> list[CaseScore]:
    scores = []
    for i, case in enumerate(cases):
        scores.append(case_score(case, drawing(predictor, case).predict(case.image).labels))
        if progress:
            progress(i + 1, len(cases))
    return scores


def drawing(predictor: Predictor, case: LoadedCase) -> Predictor:
    """The predictor to score ``case`` with: in the convention its mask is drawn in, when the model
    knows it; a model that knows one convention draws that one for every case, as it would for a user."""
    known = case.pair.convention in predictor.card.conventions
    return predictor.for_convention(case.pair.convention) if known else predictor


def case_score(case: LoadedCase, labels: np.ndarray) -> CaseScore:
    m = binary_metrics(torch.from_numpy(labels > 0)[None], torch.from_numpy(case.mask)[None])
    return CaseScore(case.pair.case_id, case.pair.dataset, case.pair.convention, **{k: float(m[k][0]) for k in METRIC_NAMES})


def summarise(scores: list[CaseScore]) -> dict[str, dict[str, float]]:
    """mean / median / worst per metric."""
    out: dict[str, dict[str, float]] = {}
    for name in METRIC_NAMES:
        values = np.array([getattr(s, name) for s in scores], dtype=np.float64)
        out[name] = {"mean": float(values.mean()), "median": float(np.median(values)), "worst": float(values.min())} if len(values) else {}
    out["n"] = {"cases": len(scores)}  # type: ignore[dict-item]
    return out


def mean_dice(scores: list[CaseScore]) -> float:
    return float(np.mean([s.dice for s in scores])) if scores else float("nan")


def write_scores_csv(scores: list[CaseScore], path: str | Path) -> Path:
    return atomic_write_csv(path, list(CaseScore.__dataclass_fields__), (asdict(s) for s in scores))
