"""Where things live on disk: the model home and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "LUNG_UNET_HOME"
DATA_ENV = "LUNG_UNET_DATA"


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
