"""One optimisation step, shared by from-scratch training and fine-tuning."""

from __future__ import annotations

from collections.abc import Callable

import torch

from napari_lung_unet.nn.device import uses_channels_last

from .metrics import dice_bce_loss


def select_outputs(logits: torch.Tensor, outputs: torch.Tensor | None) -> torch.Tensor:
    """N×C×H×W logits -> N×1×H×W: each image's own output channel (its mask's convention).
    Only that channel gets a gradient, so a case is never trained as the other convention."""
    if outputs is None or logits.shape[1] == 1:
        return logits[:, :1]
    index = outputs.to(logits.device).view(-1, 1, 1, 1).expand(-1, 1, *logits.shape[-2:])
    return logits.gather(1, index)


def train_step(
    net: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp: torch.dtype | None,
    device: torch.device,
    penalty: Callable[[], torch.Tensor] | None = None,
    outputs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward (autocast on CUDA), Dice+BCE (+ ``penalty()``, e.g. fine-tuning's pull towards the
    parent), backward, step. Returns the detached loss and logits."""
    x = x.to(device, non_blocking=True)
    if uses_channels_last(device):
        x = x.contiguous(memory_format=torch.channels_last)
    return optimise_step(lambda: net(x, outputs), y, opt, scaler, amp, device, penalty, outputs)


def optimise_step(
    forward: Callable[[], torch.Tensor],
    y: torch.Tensor,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp: torch.dtype | None,
    device: torch.device,
    penalty: Callable[[], torch.Tensor] | None = None,
    outputs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`train_step` for any ``forward()`` giving N×C×H×W logits: a fine-tune with a frozen
    encoder decodes cached features instead of running the whole network."""
    y = y.to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        logits = select_outputs(forward(), outputs)
    loss = dice_bce_loss(logits.float(), y)
    if penalty is not None:
        loss = loss + penalty()
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return loss.detach(), logits.detach()
