"""Model cards: everything needed to use and trust a set of weights, stored as ``card.json``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .model import UNetConfig

CARD_NAME = "card.json"
WEIGHTS_NAME = "weights.safetensors"
CARD_FORMAT = 1


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Normalisation:
    """Robust intensity scaling: map the given percentiles to 0 and 1, then clip."""

    kind: str = "percentile"
    low: float = 0.5
    high: float = 99.5


@dataclass
class ModelCard:
    version: str
    architecture: UNetConfig = field(default_factory=UNetConfig)
    input_size: int = 256
    normalisation: Normalisation = field(default_factory=Normalisation)
    threshold: float = 0.5
    training_data: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    created: str = field(default_factory=utc_now)
    status: str = "candidate"
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    format: int = CARD_FORMAT

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["architecture"] = self.architecture.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        if not isinstance(data, dict) or "version" not in data:
            raise ValueError("model card is not a JSON object with a 'version'")
        data = dict(data)
        if data.get("format", CARD_FORMAT) > CARD_FORMAT:
            raise ValueError(f"model card format {data['format']} is newer than this plugin understands")
        data["architecture"] = UNetConfig.from_dict(data.get("architecture", {}))
        data["normalisation"] = Normalisation(**data.get("normalisation", {}))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as exc:
            raise ValueError(f"cannot read model card {path}: {exc}") from exc
