"""The inference engine end to end on real (untrained) models: shapes, labels, clean-up, batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.images.read import read_xray
from napari_lung_unet.nn.model import UNet, UNetConfig
from napari_lung_unet.nn.model_io import save_model
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.nn.postprocess import LEFT_LUNG, RIGHT_LUNG, clean_mask, labels_from_probability
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.nn.preprocess import prepare_input


@pytest.fixture
def decisive_model_dir(tmp_path: Path) -> Path:
    """An untrained tiny U-Net whose head is rescaled so that probabilities are far from 0.5.

    Raw untrained nets output ~0.5 everywhere, which tests nothing downstream; here the
    threshold cuts the net's own spatial features into blobs, so the clean-up has real work.
    """
    torch.manual_seed(5)
    cfg = UNetConfig(base_channels=4, depth=2)
    card = ModelCard(version="decisive", architecture=cfg, input_size=64)
    model = UNet(cfg).eval()
    image, _ = make_phantom((128, 128), seed=0)
    x = prepare_input(image.astype(np.float32), card.input_size, card.normalisation)[None, None]
    with torch.no_grad():
        logits = model(x)
        model.head.bias -= logits.median()
        model.head.weight *= 50.0 / float(logits.std())
        model.head.bias *= 50.0 / float(logits.std())
    save_model(tmp_path / "decisive", model, card)
    return tmp_path / "decisive"


def _check_labels(labels: np.ndarray, shape: tuple[int, int]) -> None:
    assert labels.shape == shape
    assert labels.dtype == np.uint8
    assert set(np.unique(labels).tolist()) <= {0, 1, 2}
    assert ndimage.label(labels > 0)[1] <= 2


@pytest.mark.parametrize("shape", [(300, 260), (257, 391), (40, 1000)])
def test_prediction_shape_dtype_labels(decisive_model_dir: Path, shape: tuple[int, int]) -> None:
    image, _ = make_phantom(shape, seed=1)
    prediction = Predictor.from_registry(decisive_model_dir, device="cpu").predict(image)
    _check_labels(prediction.labels, shape)
    assert 0 < (prediction.labels > 0).mean() < 1  # the decisive net really splits the image
    assert prediction.probability.shape == shape
    assert 0.0 <= prediction.confidence <= 1.0
    assert prediction.model_version == "decisive"


def test_bundled_default_model_predicts_from_a_file(phantom_png: Path) -> None:
    predictor = Predictor.from_registry(device="cpu")  # empty home: the bundled default is current
    assert predictor.version == Registry().bundled_version
    xray = read_xray(phantom_png)
    prediction = predictor.predict(xray)
    _check_labels(prediction.labels, xray.pixels.shape)


def test_predict_batch_equals_predict(decisive_model_dir: Path) -> None:
    predictor = Predictor.from_registry(decisive_model_dir, device="cpu")
    images = [make_phantom(shape, seed=i)[0] for i, shape in enumerate([(300, 260), (257, 391), (128, 128)])]
    done: list[int] = []
    batched = list(predictor.predict_batch(images, batch_size=2, progress=done.append))
    assert len(batched) == len(images) == sum(done)
    for image, got in zip(images, batched):
        single = predictor.predict(image)
        # the 50x head gain amplifies float reordering between batch sizes, hence the loose tolerance
        np.testing.assert_allclose(got.small_probability, single.small_probability, atol=1e-3)
        assert got.labels.shape == image.shape
        assert (got.labels == single.labels).mean() > 0.999


def test_unavailable_device_is_a_clear_error(tiny_model_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        Predictor.from_registry(tiny_model_dir, device="cuda")
    with pytest.raises(ValueError, match="unknown device"):
        Predictor.from_registry(tiny_model_dir, device="tpu")


# -- post-processing on masks with a known answer ------------------------------------------


def _three_blobs_with_a_hole() -> np.ndarray:
    mask = np.zeros((100, 120), bool)
    mask[10:80, 10:45] = True  # image left: the patient's right lung
    mask[30:40, 20:30] = False  # a hole inside it
    mask[10:85, 70:110] = True  # image right: the left lung, the largest
    mask[90:96, 55:62] = True  # a third, smaller blob
    return mask


def test_clean_mask_keeps_two_fills_holes_and_names_sides() -> None:
    labels = clean_mask(_three_blobs_with_a_hole())
    assert ndimage.label(labels > 0)[1] == 2
    assert labels[35, 25] == RIGHT_LUNG  # the hole is filled with its lung's label
    assert (labels[10:80, 10:45] == RIGHT_LUNG).all()
    assert (labels[10:85, 70:110] == LEFT_LUNG).all()
    assert not labels[90:96, 55:62].any()


def test_clean_mask_empty() -> None:
    assert not clean_mask(np.zeros((50, 50), bool)).any()


@pytest.mark.parametrize("shape", [(100, 120), (517, 333), (50, 61)])
def test_labels_from_probability_returns_the_requested_shape(shape: tuple[int, int]) -> None:
    prob = _three_blobs_with_a_hole().astype(np.float32) * 0.9 + 0.05
    labels = labels_from_probability(prob, shape, threshold=0.5)
    _check_labels(labels, shape)
    left_half, right_half = labels[:, : shape[1] // 2], labels[:, shape[1] // 2 :]
    assert (left_half == RIGHT_LUNG).any() and not (left_half == LEFT_LUNG).any()
    assert (right_half == LEFT_LUNG).any() and not (right_half == RIGHT_LUNG).any()


def test_labels_from_probability_never_gives_more_than_two_pieces() -> None:
    # resampling a noisy low-res map can cut thin necks; the full-size result must still be two lungs at most
    rng = np.random.default_rng(0)
    for _ in range(40):
        prob = ndimage.gaussian_filter(rng.random((64, 64)), 1.0)
        prob = (prob - prob.min()) / (prob.max() - prob.min())
        _check_labels(labels_from_probability(prob, (301, 259), 0.5), (301, 259))


def test_all_background_probability() -> None:
    labels = labels_from_probability(np.full((64, 64), 0.1, np.float32), (200, 180))
    assert labels.shape == (200, 180) and not labels.any()
