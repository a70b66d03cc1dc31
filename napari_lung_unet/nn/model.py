"""A configurable 2-D U-Net for binary lung segmentation.

The seed tutorial's network is one configuration (:func:`UNetConfig.seed`); the shipped
default is a slimmer one chosen by measuring accuracy and CPU latency together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field
from torch import nn

Norm = Literal["batch", "instance", "group", "none"]
Upsample = Literal["transpose", "bilinear"]
# how a model with several outputs (one per lung convention) tells them apart: "head", one 1×1
# output conv each on shared features; "film", a per-convention scale and shift of every decoder
# level's features as well (feature-wise linear modulation). Measured in docs/benchmarks.md: with
# "head" the two outputs of default-3 differed by < 0.3 Dice points, so the convention needs to
# reach the decoder, not only its last 1×1 conv.
Conditioning = Literal["head", "film"]


@dataclass(frozen=True)
class UNetConfig:
    # the ranges apply when a card is loaded (card.py validates with pydantic): a hostile
    # ``base_channels: 1e40`` must be refused by name, not allocate until memory runs out
    __pydantic_config__ = ConfigDict(extra="forbid")

    in_channels: Annotated[int, Field(ge=1, le=4)] = 1
    out_channels: Annotated[int, Field(ge=1, le=8)] = 1
    base_channels: Annotated[int, Field(ge=1, le=256)] = 16
    depth: Annotated[int, Field(ge=1, le=7)] = 4
    norm: Norm = "batch"
    upsample: Upsample = "transpose"
    conditioning: Conditioning = "head"

    def __post_init__(self) -> None:
        if self.base_channels < 1 or self.depth < 1 or self.in_channels < 1 or self.out_channels < 1:
            raise ValueError(f"invalid U-Net config: {self}")
        if self.norm not in ("batch", "instance", "group", "none"):
            raise ValueError(f"unknown norm {self.norm!r}")
        if self.upsample not in ("transpose", "bilinear"):
            raise ValueError(f"unknown upsample {self.upsample!r}")
        if self.conditioning not in ("head", "film"):
            raise ValueError(f"unknown conditioning {self.conditioning!r}")

    @classmethod
    def seed(cls) -> UNetConfig:
        """The seed tutorial's U-Net: base 64, depth 4, BN+ReLU, 2×2 transposed convs."""
        return cls(base_channels=64, depth=4, norm="batch", upsample="transpose")

    @property
    def multiple(self) -> int:
        """Input sides are padded to this multiple so every pooling level divides evenly."""
        return 2**self.depth

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _norm(kind: Norm, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: Norm) -> None:
        bias = norm == "none"  # a bias before a norm layer is redundant
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=bias),
            _norm(norm, cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=bias),
            _norm(norm, cout),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    def __init__(self, cin: int, cout: int, cfg: UNetConfig) -> None:
        super().__init__()
        if cfg.upsample == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(cin, cout, 1),
            )
        self.conv = DoubleConv(2 * cout, cout, cfg.norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class FiLM(nn.Module):
    """One scale and shift per output (convention) and channel. Starts as the identity, so a model
    warm-started from a one-convention parent begins with the parent's masks in every convention."""

    def __init__(self, outputs: int, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(outputs, channels))
        self.shift = nn.Parameter(torch.zeros(outputs, channels))

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x * self.scale[index][:, :, None, None] + self.shift[index][:, :, None, None]


class UNet(nn.Module):
    """U-Net returning **logits**; apply ``torch.sigmoid`` for probabilities.

    Logits (not probabilities) come out so that training can use the numerically stable
    ``binary_cross_entropy_with_logits``; :meth:`predict_proba` is the sigmoid head.
    Any H×W works: the input is reflect-padded to ``2**depth`` and the output cropped back.
    """

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or UNetConfig()
        widths = [cfg.base_channels * 2**i for i in range(cfg.depth + 1)]
        self.encoders = nn.ModuleList([DoubleConv(cfg.in_channels, widths[0], cfg.norm)])
        self.encoders.extend(DoubleConv(widths[i], widths[i + 1], cfg.norm) for i in range(cfg.depth))
        self.decoders = nn.ModuleList(Up(widths[i + 1], widths[i], cfg) for i in reversed(range(cfg.depth)))
        self.head = nn.Conv2d(widths[0], cfg.out_channels, 1)
        self.film = (nn.ModuleList(FiLM(cfg.out_channels, widths[i]) for i in reversed(range(cfg.depth + 1)))
                     if cfg.conditioning == "film" else None)

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"UNet expects a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"UNet expects a 4-D tensor (N, C, H, W); got {x.ndim}-D with shape {tuple(x.shape)}")
        if x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"UNet expects {self.config.in_channels} input channel(s); got {x.shape[1]} "
                f"(shape {tuple(x.shape)}). Convert RGB images to grey first."
            )

    def forward(self, x: torch.Tensor, outputs: torch.Tensor | None = None) -> torch.Tensor:
        """N×C×H×W logits, one channel per output. ``outputs`` (N indices), when given, asks for only
        that output of each image: a FiLM model then runs its decoder once instead of once per output,
        and the other channels are not meaningful."""
        features = self.encode(x)  # checks x
        h, w = x.shape[-2:]
        return self.decode(features, outputs)[..., :h, :w]

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's features of ``x`` (padded to ``multiple``), shallowest first: what
        :meth:`decode` needs. A fine-tune with a frozen encoder computes them once per image."""
        self._check(x)
        h, w = x.shape[-2:]
        m = self.config.multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        skips = []
        for i, enc in enumerate(self.encoders):
            x = enc(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        return skips

    def decode(self, features: list[torch.Tensor], outputs: torch.Tensor | None = None) -> torch.Tensor:
        """Logits at the padded size from :meth:`encode`'s features (the list is not changed)."""
        skips = list(features)
        x = skips.pop()
        if self.film is None:
            for dec in self.decoders:
                x = dec(x, skips.pop())
            return self.head(x)
        return self._conditioned(x, skips, outputs)

    def _conditioned(self, x: torch.Tensor, skips: list[torch.Tensor], outputs: torch.Tensor | None) -> torch.Tensor:
        assert self.film is not None
        n, k = x.shape[0], self.config.out_channels
        if outputs is None:  # every output: the decoder runs on k copies of each image, one per output
            index = torch.arange(k, device=x.device).repeat(n)
            x, skips = x.repeat_interleave(k, 0), [s.repeat_interleave(k, 0) for s in skips]
        else:
            index = outputs.to(x.device, torch.long)
        x = self.film[0](x, index)
        for dec, film in zip(self.decoders, self.film[1:]):
            x = film(dec(x, skips.pop()), index)
        logits = self.head(x)
        if outputs is not None:
            return logits
        # copy j of image i was decoded as output j: keep its channel j
        return torch.diagonal(logits.view(n, k, k, *logits.shape[-2:]), dim1=1, dim2=2).permute(0, 3, 1, 2)

    @torch.inference_mode()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
