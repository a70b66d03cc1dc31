"""Save and load a model folder (``weights.safetensors`` + ``card.json``) without pickle."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..store.atomic import atomic_path, atomic_write_json
from .card import CARD_NAME, WEIGHTS_NAME, ModelCard
from .model import UNet


class ModelLoadError(ValueError):
    """A model folder or weights file is missing, truncated, malicious or mismatched."""


class ModelSaveError(OSError):
    """Weights could not be written (a full disk, say); the folder is named, nothing half-written is left."""


@dataclass
class LoadedModel:
    model: UNet
    card: ModelCard
    path: Path


def save_model(folder: str | Path, model: UNet, card: ModelCard) -> Path:
    """Write weights then card, each atomically; the card last, so a folder with a card is complete."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    try:
        with atomic_path(folder / WEIGHTS_NAME) as tmp:
            save_file(tensors, str(tmp), metadata={"version": card.version})
    except SafetensorError as exc:  # e.g. a full disk: one line for the CLI, not the writer's traceback
        # the parent, not the folder: the registry writes into a hidden staging folder
        raise ModelSaveError(f"cannot write the weights of model {card.version} in {folder.parent}: {_os_reason(exc)}") from None
    atomic_write_json(folder / CARD_NAME, card.to_dict())
    return folder


def _os_reason(exc: SafetensorError) -> str:
    """The OS's words from a safetensors I/O error, e.g. "No space left on device (os error 28)"."""
    text = str(exc)
    match = re.search(r'message: "([^"]+)"', text)  # older safetensors print the Rust error's Debug form
    return match.group(1) if match else text.rsplit("I/O error: ", 1)[-1]


def resolve_model_folder(path: str | Path) -> Path:
    """Accept a model folder, its card or its weights file."""
    path = Path(path)
    if path.is_file() and path.name in (CARD_NAME, WEIGHTS_NAME):
        path = path.parent
    if not path.is_dir():
        raise ModelLoadError(f"model not found: {path}")
    for name in (CARD_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise ModelLoadError(f"model folder {path} has no {name}")
    return path


def load_state_dict(weights: str | Path) -> dict[str, torch.Tensor]:
    """Read safetensors weights; never unpickles, so a malicious file cannot run code."""
    try:
        return load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot read weights {weights}: {exc} (truncated or not a safetensors file?)") from exc


def load_card(path: str | Path) -> tuple[ModelCard, Path]:
    """The card of the model at ``path`` and its folder, without reading the weights."""
    folder = resolve_model_folder(path)
    try:
        return ModelCard.read(folder / CARD_NAME), folder
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from exc


def load_model(path: str | Path) -> LoadedModel:
    card, folder = load_card(path)
    model = UNet(card.architecture)
    state = load_state_dict(folder / WEIGHTS_NAME)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise ModelLoadError(f"weights in {folder} do not match the card's architecture: {' '.join(first)}") from exc
    model.eval()
    return LoadedModel(model=model, card=card, path=folder)
