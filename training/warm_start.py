"""Start a run from a parent's weights, also when the run's model knows more conventions than the parent."""

from __future__ import annotations

from dataclasses import replace

import torch

from napari_lung_unet.images.conventions import DEFAULT_CONVENTION
from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.nn.model import UNet, UNetConfig


def widened(state: dict[str, torch.Tensor], card: ModelCard, arch: UNetConfig, conventions: list[str], source: str) -> dict[str, torch.Tensor]:
    """The parent's weights for a model of ``arch`` with one output per ``conventions``. A parent that
    knows fewer conventions gives each new output a copy of its lung-fields head, so training starts
    from the parent's own masks."""
    if replace(card.architecture, out_channels=len(conventions), conditioning=arch.conditioning) != arch:
        raise ValueError(f"--init-from {source}: its architecture differs from this run's")
    if card.architecture.conditioning == "film" and arch.conditioning != "film":
        raise ValueError(f"--init-from {source}: it is FiLM-conditioned (its conventions live in every decoder "
                         "level), and this run's model is not; train with --conditioning film")
    if card.conventions == list(conventions) and card.architecture.conditioning == arch.conditioning:
        return state
    missing = [c for c in card.conventions if c not in conventions]
    if missing:
        raise ValueError(f"--init-from {source}: knows {missing}, which this run would drop")
    fallback = card.conventions.index(DEFAULT_CONVENTION) if DEFAULT_CONVENTION in card.conventions else 0
    rows = [card.conventions.index(c) if c in card.conventions else fallback for c in conventions]
    out = dict(state)
    out["head.weight"] = state["head.weight"][rows].clone()
    out["head.bias"] = state["head.bias"][rows].clone()
    # FiLM: each output takes the parent's modulation of the output it copies; a parent without
    # FiLM gives the identity, so every output starts as the parent's own masks
    fresh = UNet(arch).state_dict()
    for name in fresh:
        if name.startswith("film."):
            out[name] = state[name][rows].clone() if name in state else fresh[name]
    return out
