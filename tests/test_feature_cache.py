"""A fine-tune with a frozen encoder encodes its augmented images once (training/feature_cache.py), and
its gate encodes each image once for parent and candidate (training/gate_scores.py).

What must hold: decoding the cached features gives the loss and gradients that running the whole
network on the same augmented images gives, for both ways of telling conventions apart (an output
head each, FiLM); float16 storage changes them only by rounding; and the gate's shared scoring
gives the scores of scoring each model on its own. On the shipped default model's real weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.nn.model import UNet, UNetConfig
from napari_lung_unet.nn.model_io import LoadedModel, load_model
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.settings import bundled_model_dir
from training.augment import AugmentConfig, AugmentedDataset
from training.data import ArrayData, discover_pairs
from training.evaluate import load_cases, score_cases
from training.feature_cache import MAX_COPIES, build_cache, in_other_conventions, plan_copies
from training.finetune_loop import freeze_encoder
from training.gate_scores import paired_scores
from training.metrics import dice_bce_loss
from training.steps import select_outputs

BOTH = ["lung-fields", "whole-lung"]
SIZE = 64


def _model(conditioning: str) -> UNet:
    """The bundled model's trained weights as a one-output, a two-head or a FiLM model; the second
    convention moved away from the first (as after training) so a mix-up of outputs would show."""
    bundled = load_model(bundled_model_dir())
    out = 1 if conditioning == "one" else 2
    arch = UNetConfig(**{**bundled.card.architecture.to_dict(), "out_channels": out,
                         "conditioning": "head" if conditioning == "one" else conditioning})
    model = UNet(arch)
    fresh = model.state_dict()
    state = {k: v for k, v in bundled.model.state_dict().items() if k in fresh}  # FiLM rows only where the model has FiLM
    state["head.weight"], state["head.bias"] = state["head.weight"][:out], state["head.bias"][:out]
    model.load_state_dict({**fresh, **state})
    torch.manual_seed(1)
    with torch.no_grad():
        if out == 2:
            model.head.bias[1] += 0.5
        for film in model.film or []:
            film.scale[1].uniform_(0.7, 1.3)
            film.shift[1].uniform_(-0.3, 0.3)
    return model


def _data(n: int, outputs: list[int]) -> ArrayData:
    images, masks = [], []
    for i in range(n):
        image, labels = make_phantom((SIZE, SIZE), seed=40 + i)
        images.append(torch.from_numpy(image.astype(np.float32) / 255))
        masks.append(torch.from_numpy(labels > 0).float())
    return ArrayData(torch.stack(images), torch.stack(masks), [f"c{i}" for i in range(n)], torch.tensor(outputs))


def _grads(model: UNet, logits: torch.Tensor, y: torch.Tensor, outputs: torch.Tensor) -> tuple[float, dict[str, torch.Tensor]]:
    loss = dice_bce_loss(select_outputs(logits, outputs), y)
    model.zero_grad(set_to_none=True)
    loss.backward()
    return float(loss.detach()), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("conditioning", ["one", "head", "film"])
def test_cached_features_give_the_whole_networks_loss_and_gradients(conditioning: str) -> None:
    model = _model(conditioning)
    model.train()
    freeze_encoder(model)  # as a fine-tune does: frozen weights and BatchNorm statistics
    outputs = [0, 0, 0] if conditioning == "one" else [0, 1, 1]
    data, device, copies = _data(3, outputs), torch.device("cpu"), 2
    # the same augmented copies the cache holds, through the whole network: copy c of image i is the
    # dataset's augmentation at epoch c
    ds = AugmentedDataset(data, AugmentConfig(), seed=5)
    picks = [4, 0, 3, 5]  # item c * n + i
    items = []
    for k in picks:
        ds.epoch = k // len(data)
        items.append(ds[k % len(data)])
    x, y = torch.stack([it[0] for it in items]), torch.stack([it[1] for it in items])
    which = torch.tensor([it[2] for it in items])
    want_loss, want = _grads(model, model(x, which), y, which)
    assert want and not any(k.startswith("encoders.") for k in want)  # the decoder learns, the encoder does not

    # relative error of each gradient (L2): float32 differs by summation order only; float16 storage
    # rounds the features to about 3 significant digits: measured up to 1.2 % on a bias (another
    # augmentation of the same image moves a gradient by the order of 100 %)
    for dtype, tol in ((torch.float32, 1e-3), (torch.float16, 3e-2)):
        # float32: summation order alone moves a gradient by up to ~3e-4 of its norm (default-3: 1.1e-4 to 3.2e-4 by thread count); a
        # wrong output or stale features move it by whole units
        cache = build_cache(model, data, copies, seed=5, device=device, dtype=dtype)
        assert len(cache) == copies * len(data)
        feats, y_cached, which_cached = cache.batch(picks, device)
        torch.testing.assert_close(y_cached, y)
        assert which_cached.tolist() == which.tolist()
        loss, got = _grads(model, model.decode(feats, which_cached), y_cached, which_cached)
        assert got.keys() == want.keys()
        assert loss == pytest.approx(want_loss, rel=tol)
        for k in want:
            assert float(torch.linalg.vector_norm(got[k] - want[k]) / torch.linalg.vector_norm(want[k])) < tol, (dtype, k)


def test_a_cache_refuses_an_encoder_that_still_learns() -> None:
    model = _model("one").train()
    with pytest.raises(ValueError, match="frozen encoder"):
        build_cache(model, _data(1, [0]), 1, seed=0, device=torch.device("cpu"))


@pytest.mark.parametrize("conditioning", ["head", "film"])
def test_the_gates_shared_scoring_gives_each_models_own_scores(tmp_path: Path, conditioning: str) -> None:
    import imageio.v3 as iio

    parent = _model(conditioning).eval()
    candidate = copy.deepcopy(parent)
    with torch.no_grad():  # a fine-tune's candidate: the decoder moved, the encoder is the parent's
        for p in candidate.decoders.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    cases = []
    for convention in BOTH:  # the same images in both conventions, as in the shipped reference set
        root = tmp_path / convention
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        for i in range(3):
            image, labels = make_phantom((90, 110), seed=60 + i)
            iio.imwrite(tmp_path / f"x{i}.png", image) if convention == BOTH[0] else None
            (root / "images" / f"x{i}.png").symlink_to(tmp_path / f"x{i}.png")
            iio.imwrite(root / "masks" / f"x{i}.png", ((labels > 0) * 255).astype(np.uint8))
        cases += load_cases(discover_pairs(root, convention))
    card = ModelCard(version="p", architecture=parent.config, input_size=SIZE, conventions=BOTH)
    predictors = [Predictor(LoadedModel(m, card, Path()), device="cpu") for m in (parent, candidate)]
    got = paired_scores(*predictors, cases)
    for predictor, scores in zip(predictors, got):
        want = score_cases(predictor, cases)
        assert [s.case_id for s in scores] == [s.case_id for s in want]
        assert [s.convention for s in scores] == [s.convention for s in want]
        np.testing.assert_allclose([s.dice for s in scores], [s.dice for s in want], atol=1e-6)
    assert [a.dice for a in got[0]] != [b.dice for b in got[1]]  # the two models were scored, not one twice


def _window(level: torch.Tensor, y: int, x: int, crop: int, scale: int) -> torch.Tensor:
    """The part of one item's level (``scale`` input pixels per cell) under the input window at (y, x)."""
    return level[:, y // scale:(y + crop) // scale, x // scale:(x + crop) // scale]


def test_a_crop_is_one_window_cut_alike_from_every_level() -> None:
    """Each cropped item must be the full item's features and mask at one place on the deepest
    level's grid, the same place at every level; the places vary; a crop as wide as the image is the image."""
    model = _model("film").eval()
    data, device = _data(2, [1, 1]), torch.device("cpu")
    cache = build_cache(model, data, 1, seed=5, device=device, dtype=torch.float32)
    full_feats, full_masks, _ = cache.batch([0, 1], device)
    grid = SIZE // full_feats[-1].shape[-1]
    crop = SIZE // 2
    picks = [0, 1] * 6
    feats, masks, _ = cache.batch(picks, device, crop=crop, gen=torch.Generator().manual_seed(3))
    assert masks.shape[-2:] == (crop, crop)
    places = set()
    for k, item in enumerate(picks):
        found = [(y, x) for y in range(0, SIZE - crop + 1, grid) for x in range(0, SIZE - crop + 1, grid)
                 if torch.equal(masks[k], full_masks[item, :, y:y + crop, x:x + crop])
                 and all(torch.equal(f[k], _window(g[item], y, x, crop, SIZE // g.shape[-1])) for f, g in zip(feats, full_feats))]
        assert found, f"item {k} is no window of image {item}"
        places.add((item, found[0]))
    assert len(places) > 2, "every crop fell at the same place"
    same, _, _ = cache.batch([0, 1], device, crop=SIZE, gen=torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(same, full_feats))


@pytest.mark.parametrize("conditioning", ["head", "film"])
def test_the_other_convention_keeps_the_parents_own_masks(conditioning: str) -> None:
    """Corrections drawn whole-lung (output 1) come back as lung-fields items (output 0) whose masks
    are the parent's own lung-fields masks of the same augmented images, computed by the whole network."""
    model = _model(conditioning).eval()
    data, device = _data(3, [1, 1, 0]), torch.device("cpu")
    cache = build_cache(model, data, 2, seed=5, device=device, dtype=torch.float32)
    others = in_other_conventions(model, cache, device)
    assert others is not None and len(others) == len(cache)
    assert others.outputs.tolist() == [0, 0, 1] * 2  # each item its other convention, never its own
    ds = AugmentedDataset(data, AugmentConfig(), seed=5)
    for k in range(len(cache)):
        ds.epoch = k // len(data)
        x, _, own = ds[k % len(data)]
        with torch.no_grad():
            want = model(x[None], torch.tensor([1 - own]))[0, 1 - own] > 0
        agree = float((others.masks[k, 0].bool() == want).float().mean())
        assert agree > 0.999, (k, agree)  # logits within rounding of 0 may fall either way
    assert in_other_conventions(_model("one").eval(), cache, device) is None


def test_copies_follow_the_draws_but_a_long_run_does_not_encode_thousands():
    # 60 steps × 3 items of one correction: 180 draws, each copy drawn about 4 times -> 45 copies
    assert plan_copies([180], [1], per_item=1) == [45]
    # 50 steps × 2 corrections' items over 7 corrections: ceil(100 / 28) = 4 copies each
    assert plan_copies([100, 150], [7, 100], per_item=1) == [4, 1]
    # --steps 100000 used to ask for 75000 copies of one image (then cut only by the 1.5 GiB budget)
    assert plan_copies([300_000], [1], per_item=1) == [MAX_COPIES]
    assert MAX_COPIES < 100
