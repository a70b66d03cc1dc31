"""Model cards: everything needed to use and trust a set of weights, stored as ``card.json``.

A card is validated when it is read: every field has a type and a range, so a hostile or
damaged card (``threshold: 1e308``, ``base_channels: 1e40``, metrics nested 5000 deep) is
refused with the file and the field named, instead of giving wrong masks or a traceback.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from ..images.conventions import DEFAULT_CONVENTION, ConventionName, default_for, output_index
from .model import UNetConfig
from .quality_card import QualityCalibration

CARD_NAME = "card.json"
WEIGHTS_NAME = "weights.safetensors"
CARD_FORMAT = 1
MAX_CARD_BYTES = 1 << 20  # real cards are a few kB; a bigger one is refused before it is parsed
MAX_NESTING = 16  # metrics/extra are a few levels deep; printing them recurses
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # also a safe folder name and printable as is
_VERSION_RE = re.compile(VERSION_PATTERN)

Version = Annotated[str, Field(pattern=VERSION_PATTERN)]
ShortText = Annotated[str, Field(max_length=200)]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def is_version_name(name: str) -> bool:
    return bool(_VERSION_RE.match(name))


@dataclass
class Normalisation:
    """Robust intensity scaling: map the given percentiles to 0 and 1, then clip."""

    kind: Literal["percentile"] = "percentile"
    low: Annotated[float, Field(ge=0, le=100)] = 0.5
    high: Annotated[float, Field(ge=0, le=100)] = 99.5

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")


@dataclass
class ModelCard:
    # strict: "created": 5 or "low": "a" is an error, not silently converted
    __pydantic_config__ = ConfigDict(strict=True, allow_inf_nan=False)

    version: Version
    architecture: UNetConfig = field(default_factory=UNetConfig)
    input_size: Annotated[int, Field(ge=16, le=4096)] = 256
    normalisation: Normalisation = field(default_factory=Normalisation)
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    training_data: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    parent: Version | None = None
    created: ShortText = field(default_factory=utc_now)
    status: ShortText = "candidate"
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    format: int = CARD_FORMAT
    # one per output channel, in order; cards written before conventions existed drew lung fields
    conventions: list[ConventionName] = field(default_factory=lambda: [DEFAULT_CONVENTION])
    # how expected_dice is computed from this model's outputs (nn/quality.py), and the model it was
    # fitted on: a fine-tune keeps its parent's until re-calibrated. None: uncalibrated (soft self-Dice)
    quality: QualityCalibration | None = None

    def __post_init__(self) -> None:
        if self.format > CARD_FORMAT:
            raise ValueError(f"format: card format {self.format} is newer than this plugin understands")
        for name in ("metrics", "extra"):
            if nesting_depth(getattr(self, name)) > MAX_NESTING:
                raise ValueError(f"{name}: nested deeper than {MAX_NESTING} levels")
        if len(self.conventions) != self.architecture.out_channels or len(set(self.conventions)) != len(self.conventions):
            raise ValueError(
                f"conventions: {self.conventions} must name each of the model's {self.architecture.out_channels} "
                "output channel(s) once"
            )

    def output_for(self, convention: str) -> int:
        """The output channel that draws ``convention``; a ConventionError names what this model knows."""
        return output_index(self.conventions, convention, self.version)

    @property
    def default_convention(self) -> ConventionName:
        """What the model draws when no convention is asked: lung fields when it knows them."""
        return default_for(self.conventions)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        """Parse and validate; a ``ValueError`` names the first bad field."""
        try:
            return _ADAPTER.validate_json(text)
        except ValidationError as exc:
            raise ValueError(describe(exc)) from None

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        path = Path(path)
        try:
            with open(path, "rb") as handle:
                text = handle.read(MAX_CARD_BYTES + 1)
            if len(text) > MAX_CARD_BYTES:
                raise ValueError(f"larger than {MAX_CARD_BYTES} bytes")
            return cls.from_json(text)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read model card {path}: {exc}") from exc


_ADAPTER = TypeAdapter(ModelCard)


def describe(exc: ValidationError) -> str:
    """One line for the first error, e.g. ``threshold: Input should be less than 1 (got 1e+308)``."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    got = first.get("input")
    text = f"{where}: {message}" if where else message
    if first["type"] != "json_invalid" and got is not None and not isinstance(got, (dict, list)):
        text += f" (got {str(got)[:40]!r})" if isinstance(got, str) else f" (got {got!r})"
    return text + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def nesting_depth(value: Any) -> int:
    """How deep dicts and lists nest; iterative, so a hostile 5000-level card cannot blow the stack."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest
