"""The model's memory of its training data, without the data: the diagonal Fisher information.

``F_i = E_x E_{y~p(y|x)} [(∂ log p(y|x) / ∂θ_i)²]`` over the training images x, at the trained
weights, with each pixel a Bernoulli variable. It says how much each weight shapes the model's
predictions on the original data, and it holds numbers, not images, so it can ship beside the
weights where the datasets' terms forbid shipping the datasets. Fine-tuning uses it twice:

- as a penalty (EWC, Kirkpatrick et al. 2017): ``λ/2 · Σ F_i (θ_i − θ*_i)²`` pulls the weights
  that mattered back towards the shipped ones, so a site's corrections move only the rest;
- as a check: the same sum with λ = 1 is the second-order estimate of the KL divergence between
  the old and new model's pixel predictions on an original training image (nats per image).

The labels are sampled from the model, not taken from the true masks ("empirical Fisher"): at a
well-fitted minimum the true-mask gradients of an image's ~150 k pixels cancel, and that estimate
came out 10⁴ times too small to weigh anything (measured on default-2).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from napari_lung_unet.store.atomic import atomic_path

from .data import ArrayData

FISHER_NAME = "fisher.safetensors"


def compute_fisher(
    model: torch.nn.Module, data: ArrayData, device: torch.device, limit: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Diagonal Fisher, one image at a time (a batch's summed gradient would cancel between images),
    one Monte-Carlo label sample per image. BatchNorm runs in eval mode, as deployed. ``limit``
    evenly spread images bound the cost of a CPU run. ``data.masks`` are not used: see above."""
    params = {name: p for name, p in model.named_parameters()}
    sums = {name: torch.zeros_like(p, device="cpu") for name, p in params.items()}
    picks = list(range(len(data))) if len(data) <= limit else [int(i * len(data) / limit) for i in range(limit)]
    gen = torch.Generator(device=device).manual_seed(0)
    was_training = model.training
    model.eval()
    for n, i in enumerate(picks):
        model.zero_grad(set_to_none=True)
        x = data.images[i][None, None].to(device)
        logits = model(x).float()
        y = torch.bernoulli(torch.sigmoid(logits.detach()), generator=gen)
        F.binary_cross_entropy_with_logits(logits, y, reduction="sum").backward()
        for name, p in params.items():
            if p.grad is not None:
                sums[name] += p.grad.detach().float().cpu() ** 2
        if progress:
            progress(n + 1, len(picks))
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {name: s / len(picks) for name, s in sums.items()}


def save_fisher(folder: str | Path, fisher: dict[str, torch.Tensor], n_images: int) -> Path:
    """bfloat16 halves the file and keeps float32's range: Fisher values span ten decades, and
    three significant digits are plenty for a penalty weight."""
    path = Path(folder) / FISHER_NAME
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in fisher.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"n_images": str(n_images), "kind": "diagonal Fisher, labels sampled from the model"})
    return path


def load_fisher(folder: str | Path) -> dict[str, torch.Tensor] | None:
    """The Fisher file beside a model's weights, or None when the model has none."""
    path = Path(folder) / FISHER_NAME
    if not path.is_file():
        return None
    try:
        return {k: v.float() for k, v in load_file(str(path), device="cpu").items()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"cannot read {path}: {exc} (delete it to fine-tune without it)") from None


def ewc_penalty(model: torch.nn.Module, anchor: dict[str, torch.Tensor], fisher: dict[str, torch.Tensor]) -> torch.Tensor:
    """½ Σ F (θ − θ*)² over the trainable weights: with λ = 1, the estimated KL drift per training image."""
    total = None
    for name, p in model.named_parameters():
        if p.requires_grad and name in fisher:
            term = (fisher[name].to(p.device) * (p - anchor[name].to(p.device)) ** 2).sum()
            total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return 0.5 * total
