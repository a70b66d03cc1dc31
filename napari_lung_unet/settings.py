"""Where things live on disk (the model home, the shared data folder) and the numeric settings.

Every numeric environment variable of the package is declared in :data:`NUMBERS` with its
default and range, and read with :func:`env_number`, so a value out of range (``inf``, ``1e400``,
a negative count, a word) is one error naming the variable and its range, wherever it is read;
the CLI checks them all at start (:func:`check_environment`).
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "LUNG_UNET_HOME"
DATA_ENV = "LUNG_UNET_DATA"


class SettingError(ValueError):
    """An environment variable holds a value outside its range; the message names both."""


@dataclass(frozen=True)
class Number:
    default: float
    low: float
    high: float
    unit: str
    whole: bool = False  # a count: 2.5 is refused, 25e6 is 25000000


NUMBERS: dict[str, Number] = {
    # pixels any reader decodes (images/errors.py explains the default); below 32² nothing is readable
    "LUNG_UNET_MAX_PIXELS": Number(25_000_000, 32 * 32, 1e11, "pixels", whole=True),
    # DICOMweb (dicom/net.py): the connect timeout and every call's total deadline
    "LUNG_UNET_DICOMWEB_CONNECT_TIMEOUT": Number(3.0, 0.1, 600.0, "seconds"),
    "LUNG_UNET_DICOMWEB_DEADLINE": Number(30.0, 0.1, 86400.0, "seconds"),
}


def env_number(name: str) -> float:
    """``$name`` as a number within its :data:`NUMBERS` range, or its default when unset or empty."""
    spec = NUMBERS[name]
    text = os.environ.get(name, "").strip()
    if not text:
        return spec.default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not in_range(value, spec.low, spec.high) or (spec.whole and not value.is_integer()):
        kind = "a whole number" if spec.whole else "a number"
        raise SettingError(
            f"{name}={text!r} is not {kind} from {_number(spec.low)} to {_number(spec.high)} {spec.unit}; "
            f"unset it for the default ({_number(spec.default)})"
        )
    return int(value) if spec.whole else value


def in_range(
    value: float, low: float | None, high: float | None, low_open: bool = False, high_open: bool = False
) -> bool:
    """Whether ``value`` is finite and within [``low``, ``high``]: the one range check of every number a
    user gives, from the environment here or on the command line (cli/numbers.py). An open end
    excludes its bound; None is no bound."""
    if not math.isfinite(value):
        return False
    if low is not None and (value < low or (low_open and value == low)):
        return False
    return high is None or not (value > high or (high_open and value == high))


@dataclass(frozen=True)
class Range:
    """The range of one number a user gives (an option, a config field): its kind and its bounds."""

    kind: type = float  # int: a whole number (True and 2.5 are refused)
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy's numbers count too
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        return in_range(float(value), self.low, self.high, self.low_open, self.high_open)

    def text(self) -> str:
        """``an integer >= 1``, ``a number from 0 to 1``: what :meth:`holds` wants, in words."""
        noun = "an integer" if self.kind is int else "a number"
        low, high = self.low, self.high
        if low is not None and high is not None:
            left, right = ("above" if self.low_open else "from"), ("below" if self.high_open else "to")
            bounds = f"{left} {low:g} {right} {high:g}"
        elif low is not None:
            bounds = f"{'>' if self.low_open else '>='} {low:g}"
        elif high is not None:
            bounds = f"{'<' if self.high_open else '<='} {high:g}"
        else:
            bounds = ""
        return f"{noun} {bounds}".strip()


def check_environment() -> None:
    """Raise :class:`SettingError` for the first numeric environment variable out of its range."""
    for name in NUMBERS:
        env_number(name)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e9 else f"{value:g}"


def home_dir() -> Path:
    """The user's model registry and corrections live here (``$LUNG_UNET_HOME`` overrides)."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("napari-lung-unet", appauthor=False))


def data_dir() -> Path:
    """Real chest X-ray datasets: ``$LUNG_UNET_DATA`` or ``../shared/data`` next to the checkout."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def bundled_model_dir() -> Path:
    return Path(__file__).resolve().parent / "models" / "default"


def corrections_dir() -> Path:
    """The widget's corrections store, which ``lung-unet finetune`` reads by default."""
    return home_dir() / "corrections"


def dataset_path(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``<data dir>/<name>`` for a dataset name read from a model card's ``training_data``.

    A card is a file anyone can ship, so its names must not choose folders outside the data
    folder: an absolute name or one that climbs out (``../../..``) raises ``ValueError``. The
    check is on the name itself, so datasets that are symlinks inside the data folder still work.
    """
    base = data_dir() if root is None else Path(root)
    parts = Path(os.path.normpath(name)).parts if name else ()
    if not parts or Path(name).is_absolute() or parts[0] in (os.curdir, os.pardir) or "\0" in name:
        raise ValueError(f"dataset name {name!r} from a model card is not a folder inside the data folder {base}")
    return base / name
