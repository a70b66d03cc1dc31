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
