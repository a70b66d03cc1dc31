"""The gate's measurements for a fine-tune: the candidate against its parent on the held-out corrections,
the base validation data, the shipped reference set, the Fisher estimate and the uncorrected images
(training/finetune.py runs them; training/gate.py judges them)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from napari_lung_unet.images.conventions import DEFAULT_CONVENTION
from napari_lung_unet.nn.predict import Predictor

from . import gate
from .evaluate import CaseScore, mean_dice
from .finetune_loop import estimated_drift
from .gate_scores import paired_scores
from .metrics import binary_metrics


def _dice_by_group(scores: list[CaseScore]) -> tuple[dict[gate.Group, float], dict[gate.Group, int]]:
    """Mean Dice per convention ("", convention) and per dataset within it (dataset, convention)."""
    groups: dict[gate.Group, list] = {}
    for s in scores:
        groups.setdefault(("", s.convention), []).append(s)
        groups.setdefault((s.dataset, s.convention), []).append(s)
    return {g: mean_dice(v) for g, v in groups.items()}, {g: len(v) for g, v in groups.items()}


def _group_key(group: gate.Group) -> str:
    """``base_val_dice`` / ``montgomery_val_dice`` as before conventions for lung fields; other
    conventions get a suffix (``shenzhen_val_dice_whole-lung``), so older results still read."""
    dataset, convention = group
    suffix = "" if convention == DEFAULT_CONVENTION else f"_{convention}"
    return (f"{dataset}_val_dice" if dataset else "base_val_dice") + suffix


def _agreement(parent: Predictor, candidate: Predictor, images: list[np.ndarray]) -> float:
    dice = [float(binary_metrics(torch.from_numpy(parent.predict(im).labels > 0)[None],
                                 torch.from_numpy(candidate.predict(im).labels > 0)[None])["dice"][0]) for im in images]
    return float(np.mean(dice))


def gate_checks(cfg: Any, inputs: Any, parent: Predictor, candidate: Predictor, model: torch.nn.Module) -> tuple[list[gate.Check], dict, dict]:
    """The gate's checks and the numbers before and after (``cfg``: a FinetuneConfig; ``inputs``: finetune.Inputs,
    not imported here: finetune imports this module)."""
    s0, s1 = paired_scores(parent, candidate, inputs.holdout)
    before, after = {"holdout_dice": mean_dice(s0)}, {"holdout_dice": mean_dice(s1)}
    n_corrections = len(inputs.train_pairs) + (0 if inputs.holdout_trained else len(inputs.holdout_pairs))
    checks = [gate.holdout_check([s.dice for s in s0], [s.dice for s in s1], inputs.holdout_trained, n_corrections,
                                 cfg.holdout_fraction)]
    measured: frozenset[str] = frozenset()
    if inputs.base_val:
        (b0, counts), (b1, _) = (_dice_by_group(s) for s in paired_scores(parent, candidate, inputs.base_val))
        measured = frozenset(c for _, c in counts)
        checks += gate.base_checks(b0, b1, counts, cfg.tolerance, cfg.dataset_tolerance)
        before.update({_group_key(k): v for k, v in b0.items()})
        after.update({_group_key(k): v for k, v in b1.items()})
    else:
        checks.append(gate.not_checked("base", "original validation data",
                                       "not on this computer (set LUNG_UNET_DATA to measure it): no base Dice was measured"))
    if inputs.shipped:
        (r0, counts), (r1, _) = (_dice_by_group(s) for s in paired_scores(parent, candidate, inputs.shipped))
        conv = {c: (r0[("", c)], r1[("", c)], counts[("", c)]) for _, c in counts}
        checks += gate.reference_checks({c: v[0] for c, v in conv.items()}, {c: v[1] for c, v in conv.items()},
                                        {c: v[2] for c, v in conv.items()}, cfg.reference_tolerance, measured)
        before.update({f"reference_dice_{c}": v[0] for c, v in conv.items()})
        after.update({f"reference_dice_{c}": v[1] for c, v in conv.items()})
    if inputs.reference is not None:
        drift = estimated_drift(model, inputs.reference)
        checks.append(gate.estimate_check(drift, cfg.forgetting_budget, inputs.reference.source))
        after["estimated_forgetting"] = drift
    else:
        checks.append(gate.not_checked("estimate", "estimated forgetting", "the model ships no Fisher information file"))
    if inputs.unlabeled:
        agreement = _agreement(parent, candidate, inputs.unlabeled)
        checks.append(gate.agreement_check(agreement, cfg.agreement_floor, len(inputs.unlabeled)))
        after["unlabeled_agreement"] = agreement
    return checks, before, after
