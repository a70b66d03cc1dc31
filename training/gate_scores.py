"""The gate's scores of a parent and its candidate on the same cases, with the work they share done once.

The gate scores both models on every held-out, base-validation and reference case. A candidate
fine-tuned with a frozen encoder has its parent's encoder, weights and statistics alike, so each
image is read, normalised and encoded once, and only the two decoders run per model (and per
convention, where the reference set holds one image drawn in both). Measured with
bench/finetune_levers.py; the scores are the ones :func:`evaluate.score_cases` gives
(tests/test_feature_cache.py).
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from napari_lung_unet.nn.device import autocast_dtype, uses_channels_last
from napari_lung_unet.nn.predict import Predictor

from .evaluate import CaseScore, LoadedCase, case_score, drawing, score_cases


def same_encoder(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Whether two U-Nets' encoders are identical, weights and BatchNorm statistics."""
    sa, sb = a.encoders.state_dict(), b.encoders.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k].to(sa[k].device)) for k in sa)


def paired_scores(parent: Predictor, candidate: Predictor, cases: list[LoadedCase]) -> tuple[list[CaseScore], list[CaseScore]]:
    """(parent's scores, candidate's scores) on ``cases``, in order, as :func:`score_cases` gives them."""
    shareable = (parent.device == candidate.device and not parent.flip_tta and not candidate.flip_tta
                 and same_encoder(parent.model, candidate.model))
    if not shareable:
        return score_cases(parent, cases), score_cases(candidate, cases)
    shows: dict[str, list[int]] = {}  # image file -> the cases showing it: one image drawn in two conventions is encoded once
    for i, case in enumerate(cases):
        shows.setdefault(str(case.pair.image), []).append(i)
    out: list[list[CaseScore | None]] = [[None] * len(cases), [None] * len(cases)]
    for same_image in shows.values():
        x, shape = parent.prepare(cases[same_image[0]].image)
        features = encode(parent, x)
        for i in same_image:
            for k, predictor in enumerate((parent, candidate)):
                p = drawing(predictor, cases[i])
                out[k][i] = case_score(cases[i], p.finish(_decode(p, features, x.shape[-2:]), shape).labels)
    return [s for s in out[0] if s is not None], [s for s in out[1] if s is not None]


@torch.inference_mode()
def encode(predictor: Predictor, x: torch.Tensor) -> list[torch.Tensor]:
    """The encoder features of one prepared S×S input, as ``predictor.network`` computes them."""
    batch = x[None, None].to(predictor.device)
    if uses_channels_last(predictor.device):
        batch = batch.contiguous(memory_format=torch.channels_last)
    with _autocast(predictor):
        return predictor.model.encode(batch)


@torch.inference_mode()
def _decode(predictor: Predictor, features: list[torch.Tensor], size: torch.Size) -> np.ndarray:
    """What ``predictor.network`` gives for the image that was encoded: its convention's probabilities."""
    output = predictor.card.output_for(predictor.convention)
    only = torch.full((1,), output, dtype=torch.long, device=features[0].device)
    with _autocast(predictor):
        logits = predictor.model.decode(features, only)[..., : size[0], : size[1]].float()
    return torch.sigmoid(logits[:, output]).cpu().numpy()[0]


def _autocast(predictor: Predictor):  # type: ignore[no-untyped-def]
    amp = autocast_dtype(predictor.device)
    return torch.autocast(predictor.device.type, dtype=amp) if amp else nullcontext()
