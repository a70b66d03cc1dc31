"""The fast CPU inference path must agree with the plain fp32 path it replaces.

Fast: channels_last network, numpy percentiles, and labels upsampled cell by cell with a graph
piece count. Plain: NCHW fp32 network, ``torch.quantile``, and full-size float resampling with a
full-size ``ndimage.label``. A tiny U-Net trained on phantoms here gives real lung-shaped masks,
so the comparison is not between two empty (or two all-lung) images.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_lung_unet.nn import postprocess
from napari_lung_unet.nn.card import ModelCard, Normalisation
from napari_lung_unet.nn.model import UNet, UNetConfig
from napari_lung_unet.nn.model_io import LoadedModel
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.nn.preprocess import normalise, prepare_input, resize
from training.steps import train_step

INPUT = 64
CARD = ModelCard(version="fast-path", architecture=UNetConfig(base_channels=8, depth=2), input_size=INPUT)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


@pytest.fixture(scope="module")
def trained() -> LoadedModel:
    """A few seconds of training on phantoms: masks with Dice ~0.98 against the phantom truth."""
    torch.manual_seed(0)
    pairs = [make_phantom((96, 96), seed=s) for s in range(16)]
    x = torch.stack([prepare_input(img.astype(np.float32), INPUT, CARD.normalisation) for img, _ in pairs])[:, None]
    y = torch.stack([(resize((lab > 0).astype(np.float32), (INPUT, INPUT)) > 0.5).float() for _, lab in pairs])[:, None]
    net = UNet(CARD.architecture).train()
    opt = torch.optim.Adam(net.parameters(), lr=3e-2)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    threads = torch.get_num_threads()
    # a net this small gains nothing from threads, and on a busy 2-core machine 2 threads ran 30x slower
    torch.set_num_threads(1)
    try:
        for step in range(80):
            batch = slice((step * 8) % 16, (step * 8) % 16 + 8)
            train_step(net, x[batch], y[batch], opt, scaler, None, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    return LoadedModel(model=net.eval(), card=CARD, path=Path("fast-path"))


def _plain_normalise(image: torch.Tensor, norm: Normalisation) -> torch.Tensor:
    q = torch.quantile(image.reshape(-1), torch.tensor([norm.low / 100.0, norm.high / 100.0]))
    return ((image - q[0]) / max(float(q[1] - q[0]), 1e-6)).clamp(0.0, 1.0)


def _plain_labels(prob: np.ndarray, shape: tuple[int, int], threshold: float, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """The full-size float path: resample everything, then label all pixels to count pieces."""
    with monkeypatch.context() as patch:
        # report "more than two pieces" so the full-size labelling pass always runs, as it did before
        patch.setattr(
            postprocess, "_upsample_labels",
            lambda cleaned, side, small, out_shape, t: (postprocess._resize_labels(cleaned, side, out_shape, t), 3),
        )
        return postprocess.labels_from_probability(prob, shape, threshold)


def _plain_predict(loaded: LoadedModel, image: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    model = copy.deepcopy(loaded.model).eval()  # NCHW, fp32
    x = _plain_normalise(resize(image.astype(np.float32), (INPUT, INPUT)), loaded.card.normalisation)
    with torch.no_grad():
        prob = torch.sigmoid(model(x[None, None]))[0, 0].numpy()
    return prob, _plain_labels(prob, image.shape, loaded.card.threshold, monkeypatch)


@pytest.mark.parametrize("shape, seed", [((300, 260), 40), ((1100, 900), 41), ((96, 96), 42)])
def test_fast_path_matches_plain_fp32_path(
    trained: LoadedModel, shape: tuple[int, int], seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    image, truth = make_phantom(shape, seed=seed)
    fast = Predictor(LoadedModel(copy.deepcopy(trained.model), trained.card, trained.path), device="cpu").predict(image)
    plain_prob, plain_labels = _plain_predict(trained, image, monkeypatch)

    assert _dice(plain_labels, truth) > 0.8, "the model must segment the phantom, or the comparison is vacuous"
    assert 0.05 < (plain_labels > 0).mean() < 0.6
    assert np.abs(fast.small_probability - plain_prob).max() < 1e-4
    assert _dice(fast.labels, plain_labels) >= 0.995
    assert (fast.labels == plain_labels).mean() >= 0.9999  # left/right assignment agrees too


def test_cpu_predictor_runs_channels_last(trained: LoadedModel) -> None:
    predictor = Predictor(LoadedModel(copy.deepcopy(trained.model), trained.card, trained.path), device="cpu")
    conv = predictor.model.encoders[0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)


def test_numpy_percentiles_match_torch_quantile() -> None:
    image = torch.from_numpy(make_phantom((128, 160), seed=7)[0].astype(np.float32))
    norm = Normalisation()
    torch.testing.assert_close(normalise(image, norm), _plain_normalise(image, norm), atol=1e-5, rtol=0)


@pytest.mark.parametrize("seed", range(6))
def test_cell_upsampling_equals_full_size_resampling(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Noisy maps at odd scales, including thin necks that resampling splits into extra pieces."""
    real = postprocess._upsample_labels
    checked: list[int] = []

    def compare(cleaned, side, small, out_shape, threshold):  # type: ignore[no-untyped-def]
        labels, pieces = real(cleaned, side, small, out_shape, threshold)
        plain = postprocess._resize_labels(cleaned, side, out_shape, threshold)
        np.testing.assert_array_equal(labels, plain)
        assert pieces == ndimage.label(plain > 0)[1]
        checked.append(pieces)
        return labels, pieces

    monkeypatch.setattr(postprocess, "_upsample_labels", compare)
    rng = np.random.default_rng(seed)
    for _ in range(15):
        h, w = (int(v) for v in rng.integers(8, 48, size=2))
        prob = ndimage.gaussian_filter(rng.random((h, w)), float(rng.uniform(0.5, 3.0)))
        prob = ((prob - prob.min()) / (prob.max() - prob.min())).astype(np.float32)
        shape = (int(h * rng.uniform(1.0, 9.0)), int(w * rng.uniform(1.0, 9.0)))
        postprocess.labels_from_probability(prob, shape, float(rng.uniform(0.35, 0.65)))
    assert len(checked) >= 10


def test_cell_upsampling_splits_its_work_into_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    prob = ndimage.gaussian_filter(np.random.default_rng(9).random((40, 40)), 1.5).astype(np.float32)
    whole = postprocess.labels_from_probability(prob, (301, 259), float(np.median(prob)))
    monkeypatch.setattr(postprocess, "_CHUNK_PIXELS", 100)  # a few cells per chunk
    np.testing.assert_array_equal(postprocess.labels_from_probability(prob, (301, 259), float(np.median(prob))), whole)


def test_fill_holes_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        m = ndimage.gaussian_filter(rng.random((40, 33)), float(rng.uniform(0.5, 2.5)))
        m = m > np.quantile(m, rng.uniform(0.2, 0.8))
        np.testing.assert_array_equal(postprocess._fill_holes(m), ndimage.binary_fill_holes(m))
