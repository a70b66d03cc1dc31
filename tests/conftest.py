"""Shared fixtures: phantoms on disk, an isolated model home, tiny real models, the real data."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.nn.model import UNet, UNetConfig
from napari_lung_unet.nn.model_io import save_model
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.settings import DATA_ENV, HOME_ENV, data_dir

TINY = UNetConfig(base_channels=4, depth=2)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty LUNG_UNET_HOME, so no test touches the user's registry."""
    home = tmp_path_factory.mktemp("lung_unet_home")
    monkeypatch.setenv(HOME_ENV, str(home))
    return home


@pytest.fixture
def phantom() -> tuple[np.ndarray, np.ndarray]:
    return make_phantom((256, 224), seed=3)


@pytest.fixture
def phantom_png(tmp_path: Path) -> Path:
    image, _ = make_phantom((300, 260), seed=4)
    path = tmp_path / "phantom.png"
    iio.imwrite(path, image)
    return path


@pytest.fixture
def phantom_dataset(tmp_path: Path) -> Path:
    """A flat images/ + masks/ dataset of 6 phantoms."""
    root = tmp_path / "phantoms"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(6):
        image, labels = make_phantom((128, 128), seed=10 + i)
        iio.imwrite(root / "images" / f"case{i}.png", image)
        iio.imwrite(root / "masks" / f"case{i}.png", ((labels > 0) * 255).astype(np.uint8))
    return root


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> Path:
    """A real (untrained) tiny U-Net saved as a model folder."""
    torch.manual_seed(0)
    folder = tmp_path / "tiny_model"
    save_model(folder, UNet(TINY), ModelCard(version="tiny", architecture=TINY, input_size=64))
    return folder


@pytest.fixture
def two_convention_model_dir(tmp_path: Path) -> Path:
    """A real tiny U-Net that knows both conventions (card: lung-fields, whole-lung), saved as a model folder.

    Its two 1×1 output convs share weights and differ in bias: the lung-fields output says "no lung"
    everywhere, the whole-lung one "lung" everywhere. Any mask then shows at a glance which output
    drew it (lung-fields: 0 lung pixels; whole-lung: every pixel right or left lung), so a test sees
    the convention reach a worker without reading the model's internals. (``two_convention_current``
    below differs by a small bias only: its masks differ in size, not all-or-nothing.)
    """
    two = replace(TINY, out_channels=2)
    torch.manual_seed(0)
    model = UNet(two)
    with torch.no_grad():
        model.head.weight[1] = model.head.weight[0]
        model.head.bias[0] -= 8.0
        model.head.bias[1] = model.head.bias[0] + 16.0
    folder = tmp_path / "two_convention_model"
    save_model(folder, model, ModelCard(version="both", architecture=two, input_size=64, conventions=["lung-fields", "whole-lung"]))
    return folder


@pytest.fixture
def real_data() -> Path:
    """The shared chest X-ray data. Under CI a missing data folder is a failure, not a skip."""
    root = data_dir()
    if not (root / "montgomery" / "images").is_dir():
        message = f"real data not found at {root} (set {DATA_ENV})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture
def fresh_predictor_cache():
    """The widget caches loaded models; every GUI test starts and ends without another test's model."""
    from napari_lung_unet.widget.engine import clear_cache  # imports Qt: only GUI tests ask for this

    clear_cache()
    yield
    clear_cache()


@pytest.fixture(scope="session")
def phantom_parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny U-Net trained on phantoms (tests/phantom_models.py), once per test process; copy it, never change it."""
    from phantom_models import train_phantom_parent

    return train_phantom_parent(tmp_path_factory.mktemp("phantom_parent"))


@pytest.fixture
def tiny_current(tiny_model_dir: Path) -> str:
    """Register the tiny model and make it current, so GUI proposals and fine-tunes take seconds."""
    from napari_lung_unet.nn.model_io import load_model
    from napari_lung_unet.nn.registry import Registry

    loaded = load_model(tiny_model_dir)
    Registry().add(loaded.model, loaded.card)
    Registry().set_current("tiny")
    return "tiny"


@pytest.fixture
def xray_folder(tmp_path: Path) -> Path:
    """A worklist folder of three small phantom radiographs."""
    root = tmp_path / "worklist"
    root.mkdir()
    for i in range(3):
        iio.imwrite(root / f"case{i}.png", make_phantom((160, 144), seed=20 + i, dtype=np.uint8)[0])
    return root


@pytest.fixture
def notes():
    """(severity, message) of every napari notification shown during the test (its manager is global)."""
    from napari.utils.notifications import notification_manager

    seen: list[tuple[str, str]] = []

    def collect(notification) -> None:
        seen.append((str(notification.severity), str(notification.message)))

    notification_manager.notification_ready.connect(collect)
    yield seen
    notification_manager.notification_ready.disconnect(collect)


@pytest.fixture
def bundled_dock(make_napari_viewer):  # noqa: ANN001, ANN201 - napari and Qt types load lazily
    """A viewer with the Lung U-Net dock on the CPU; the bundled model is current (an empty home)."""
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-lung-unet", "Lung U-Net")
    widget.device_combo.setCurrentText("cpu")
    return widget


@pytest.fixture
def docked_widget(make_napari_viewer, tiny_current):  # noqa: ANN001, ANN201 - napari and Qt types load lazily
    """A viewer with the Lung U-Net dock on the CPU and a tiny current model."""
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-lung-unet", "Lung U-Net")
    widget.device_combo.setCurrentText("cpu")
    return widget


@pytest.fixture
def base_registry(isolated_home: Path) -> Registry:
    """A registry whose current version is an untrained tiny U-Net named "base"."""
    registry = Registry()
    torch.manual_seed(0)
    registry.add(UNet(TINY), ModelCard(version="base", architecture=TINY, input_size=64, status="trained"))
    registry.set_current("base")
    return registry


@pytest.fixture
def two_convention_current(isolated_home: Path) -> str:
    """A tiny real U-Net that knows both lung conventions (two output channels), registered and current.

    Untrained, with the whole-lung channel's bias raised: its masks cover more than the lung-fields
    ones, as the real conventions do, so a test can tell which convention a proposal was drawn in.
    """
    torch.manual_seed(0)
    config = UNetConfig(base_channels=4, depth=2, out_channels=2)
    model = UNet(config)
    with torch.no_grad():
        model.head.bias[1] += 1.0
    card = ModelCard(version="tiny2", architecture=config, input_size=64, status="trained",
                     conventions=["lung-fields", "whole-lung"])
    Registry().add(model, card)  # saved with the project's own save_model, like any registered version
    Registry().set_current("tiny2")
    return "tiny2"
