"""The inference engine: image in, lung labels and probability out, on CPU, CUDA or MPS."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..images.read import XRay, to_grey
from .card import ModelCard
from ..images.conventions import DEFAULT_CONVENTION
from .device import autocast_dtype, resolve_device, uses_channels_last
from .model import UNet
from .model_io import LoadedModel
from .postprocess import labels_from_probability
from .quality import expected_dice
from .quality_card import QualityCalibration
from .preprocess import prepare_input, resize
from .registry import Registry


@dataclass
class Prediction:
    labels: np.ndarray  # uint8, original size: 0 background, 1 right lung, 2 left lung
    small_probability: np.ndarray  # float32 at the network's input size
    model_version: str
    convention: str = DEFAULT_CONVENTION
    quality: QualityCalibration | None = None  # the card's calibration of expected_dice (None: uncalibrated)
    threshold: float = 0.5
    _expected: float | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def probability(self) -> np.ndarray:
        """Lung probability at the original size (computed on demand: 80 MB for a 20-Mpx image)."""
        return resize(self.small_probability, self.labels.shape).numpy()

    @property
    def expected_dice(self) -> float:
        """The Dice this mask expects against a clinician's mask in its convention (nn/quality.py); computed once."""
        if self._expected is None:
            self._expected = expected_dice(self.small_probability, self.convention, self.quality, self.threshold)
        return self._expected

    @property
    def confidence(self) -> float:
        """Older name of :attr:`expected_dice` (the ⚠ flag and the worklist read it); the same number."""
        return self.expected_dice


def prepare_for(card: ModelCard, image: np.ndarray | XRay) -> tuple[torch.Tensor, tuple[int, int]]:
    """The network's input for ``image`` and the original shape. No model needed: batch workers call it."""
    pixels = image.pixels if isinstance(image, XRay) else to_grey(image)
    return prepare_input(pixels, card.input_size, card.normalisation), pixels.shape


def finish_for(card: ModelCard, prob: np.ndarray, shape: tuple[int, int], convention: str = DEFAULT_CONVENTION) -> Prediction:
    """Labels at ``shape`` from the network's probability. No model needed: batch workers call it."""
    labels = labels_from_probability(prob, shape, card.threshold)
    prediction = Prediction(labels=labels, small_probability=prob, model_version=card.version, convention=convention,
                            quality=card.quality, threshold=card.threshold)
    prediction.expected_dice  # noqa: B018 - now, on the worker's thread: the dock reads it on the GUI thread (~15 ms)
    return prediction


class Predictor:
    """Holds one loaded model on one device; reuse it across images."""

    def __init__(
        self, loaded: LoadedModel, device: str | torch.device = "auto", flip_tta: bool = False,
        convention: str | None = None,
    ) -> None:
        self.card: ModelCard = loaded.card
        self.convention = convention or loaded.card.default_convention  # None: the model's own
        self._output = loaded.card.output_for(self.convention)  # a model that does not know it refuses here, by name
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        model: UNet = loaded.model.eval()
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        if uses_channels_last(self.device):
            model = model.to(memory_format=torch.channels_last)
        self.model = model.to(self.device)
        self.flip_tta = flip_tta
        self._amp = autocast_dtype(self.device)

    @classmethod
    def from_registry(
        cls, name_or_path: str | Path | None = None, device: str = "auto", home: str | Path | None = None,
        convention: str | None = None,
    ) -> Predictor:
        return cls(Registry(home).load(name_or_path), device=device, convention=convention)

    @property
    def version(self) -> str:
        return self.card.version

    def for_convention(self, convention: str) -> Predictor:
        """The same model on the same device, drawing ``convention``; a model that does not know it refuses by name."""
        if convention == self.convention:
            return self
        other = copy.copy(self)
        other.convention, other._output = convention, self.card.output_for(convention)
        return other

    def prepare(self, image: np.ndarray | XRay) -> tuple[torch.Tensor, tuple[int, int]]:
        return prepare_for(self.card, image)

    @torch.inference_mode()
    def network(self, batch: torch.Tensor) -> np.ndarray:
        """N×S×S normalised inputs -> N×S×S probabilities."""
        x = batch[:, None].to(self.device, non_blocking=True)
        if uses_channels_last(self.device):
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(self.device.type, dtype=self._amp) if self._amp else nullcontext()
        only = torch.full((x.shape[0],), self._output, dtype=torch.long, device=x.device)  # one output: one decoder pass
        with ctx:
            logits = self.model(x, only).float()
            if self.flip_tta:
                logits = 0.5 * (logits + self.model(x.flip(-1), only).float().flip(-1))
        return torch.sigmoid(logits[:, self._output]).cpu().numpy()

    def finish(self, prob: np.ndarray, shape: tuple[int, int]) -> Prediction:
        return finish_for(self.card, prob, shape, self.convention)

    def predict(self, image: np.ndarray | XRay) -> Prediction:
        x, shape = self.prepare(image)
        return self.finish(self.network(x[None])[0], shape)

    def predict_batch(
        self,
        images: Iterable[np.ndarray | XRay],
        batch_size: int = 8,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[Prediction]:
        """Yield one prediction per image, running the network on batches."""
        pending: list[tuple[torch.Tensor, tuple[int, int]]] = []

        def flush() -> Iterator[Prediction]:
            probs = self.network(torch.stack([x for x, _ in pending]))
            for prob, (_, shape) in zip(probs, pending):
                yield self.finish(prob, shape)
                if progress:
                    progress(1)
            pending.clear()

        for image in images:
            pending.append(self.prepare(image))
            if len(pending) >= batch_size:
                yield from flush()
        if pending:
            yield from flush()
