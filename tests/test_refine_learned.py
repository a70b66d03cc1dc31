"""Learned refiner (issue 19): a U-Net with click inputs, warm-started from the bundled model, redraws
the region around a click; the change is the click's connected piece and painting stays."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_lung_unet.images.labels import RIGHT_LUNG
from napari_lung_unet.images.phantom_radiograph import make_radiograph_phantom
from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.nn.clicks import click_maps, click_point, largest_region
from napari_lung_unet.nn.model_io import LoadedModel, load_model, save_model
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.nn.refine import Click, RefineContext
from napari_lung_unet.nn.refine_learned import LearnedRefineContext, crop_at, refiner_from_parent
from napari_lung_unet.settings import bundled_model_dir
from training.data import ArrayData
from training.refiner_train import sample

from test_refine import apply, deepest, dice, extra_below_lung, missed_lower_lung  # apply: nothing changes outside the box


@pytest.fixture(scope="module")
def parent() -> LoadedModel:
    return load_model(bundled_model_dir())


@pytest.fixture(scope="module")
def warm_refiner(parent: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The bundled model with click inputs at zero weight, saved and loaded as a refiner folder (no pickle)."""
    model = refiner_from_parent(parent)
    card = replace(parent.card, version="refiner-warm", architecture=model.config, parent=parent.card.version,
                   extra={"refiner": True, "refines": parent.card.version})
    return load_model(save_model(tmp_path_factory.mktemp("refiner") / "warm", model, card))


@pytest.fixture(scope="module")
def phantom_case(parent: LoadedModel) -> tuple[np.ndarray, object]:
    image, _ = make_radiograph_phantom((700, 560), seed=3)
    return image, Predictor(parent, device="cpu").predict(image)


def test_warm_start_draws_the_parents_masks_whatever_the_clicks(parent: LoadedModel, warm_refiner: LoadedModel) -> None:
    torch.manual_seed(1)
    image = torch.rand(2, 1, 96, 96)
    extra = torch.rand(2, 3, 96, 96).round()  # any mask and click maps: their weights start at zero
    with torch.inference_mode():
        for k in range(2):
            which = torch.full((2,), k)
            want = parent.model(image, which)[:, k]
            got = warm_refiner.model(torch.cat([image, extra], 1), which)[:, k]
            assert torch.allclose(got, want, atol=1e-5)
    assert warm_refiner.card.architecture.in_channels == 4 and warm_refiner.card.extra["refines"] == "default-3"


def test_positive_click_restores_the_missed_lung_connected_to_it_and_keeps_painting(
    warm_refiner: LoadedModel, phantom_case: tuple[np.ndarray, object]
) -> None:
    image, prediction = phantom_case
    cut, missed = missed_lower_lung(prediction.labels)
    context = LearnedRefineContext.from_prediction(warm_refiner, prediction, image)
    r, c = deepest(missed)
    painted = np.zeros(cut.shape, bool)
    painted[r + 4 : r + 8, :] = True  # painted as background by hand
    out = apply(cut, context, Click(r, c, positive=True), painted)
    assert np.array_equal(out[painted], cut[painted]), "a hand-painted pixel changed"
    added = (out > 0) & (cut == 0)
    assert set(np.unique(out[added])) == {RIGHT_LUNG}, "lung added on the image's left is the right lung"
    assert dice(added | (missed & painted), missed) > 0.85
    pieces = largest_region(added | painted)  # the change, joined across the painted band, is one piece with the click
    assert pieces is not None and pieces[r, c]
    assert np.array_equal(out[cut > 0], cut[cut > 0]), "a positive click removed lung"


def test_negative_click_removes_the_extra_region_only(warm_refiner: LoadedModel, phantom_case: tuple[np.ndarray, object]) -> None:
    image, prediction = phantom_case
    grown, extra = extra_below_lung(prediction.labels)
    context = LearnedRefineContext.from_prediction(warm_refiner, prediction, image)
    out = apply(grown, context, Click(*deepest(extra), positive=False))
    removed = (grown > 0) & (out == 0)
    assert removed.sum() > 0.8 * extra.sum()
    assert (removed & ~extra).sum() < 0.05 * extra.sum(), "the negative click took lung beyond the extra region"


def test_bad_input_is_refused_by_name(warm_refiner: LoadedModel, parent: LoadedModel, phantom_case: tuple[np.ndarray, object]) -> None:
    image, prediction = phantom_case
    context = LearnedRefineContext.from_prediction(warm_refiner, prediction, image)
    with pytest.raises(ValueError, match="do not match"):
        context.refine(np.zeros((10, 10), np.uint8), Click(1, 1, True))
    with pytest.raises(ValueError, match="outside the image"):
        context.refine(prediction.labels, Click(700, 5, True))
    with pytest.raises(ValueError, match="not a refiner"):
        LearnedRefineContext.from_prediction(parent, prediction, image)


def test_click_maps_and_crops_sit_where_the_click_is() -> None:
    maps = click_maps([(50.0, 60.0, True), (10.0, 12.0, False)], (40, 40), origin=(30, 40))
    assert maps[0, 20, 20] == 1 and maps[0].sum() == pytest.approx(np.pi * 25, rel=0.25) and maps[1].sum() == 0
    box = crop_at((380, 5), (384, 384), 192)
    assert (box[0].start, box[0].stop, box[1].start, box[1].stop) == (192, 384, 0, 192)


def test_training_sample_clicks_the_largest_wrong_region_and_targets_the_truth() -> None:
    truth = torch.zeros(1, 128, 128)
    truth[0, 20:110, 20:60] = 1
    proposal = truth.clone().bool()
    proposal[0, 70:110, 20:60] = False  # the lower part missed: a positive click belongs there
    data = ArrayData(torch.rand(1, 128, 128), truth, ["a"], torch.tensor([0]))
    x, y, k = sample(data, proposal[:, None], 0, random.Random(0), 64, augmenting=False)
    assert x.shape == (4, 64, 64) and y.shape == (1, 64, 64) and k == 0
    region = largest_region(proposal[0].numpy() ^ (truth[0].numpy() > 0))
    r, c = click_point(region)
    assert 70 <= r < 110 and 20 <= c < 60
    assert x[2].sum() > 0 and x[3].sum() == 0, "a missed region gets a positive click, not a negative one"
    assert torch.equal(y[0].bool() | x[1].bool(), y[0].bool()), "the previous mask is the truth minus what was missed"


def test_hybrid_gives_a_click_the_other_convention_agrees_with_to_region_growing(
    warm_refiner: LoadedModel, phantom_case: tuple[np.ndarray, object]
) -> None:
    image, prediction = phantom_case
    cut, missed = missed_lower_lung(prediction.labels)
    click = Click(*deepest(missed), positive=True)
    # an "other convention" that says lung everywhere: it agrees with every positive click, no negative one
    other = replace(prediction, small_probability=np.full_like(prediction.small_probability, 0.99))
    hybrid = LearnedRefineContext.from_prediction(warm_refiner, prediction, image, other=other)
    alone = RefineContext.from_prediction(prediction, other)
    got, want = hybrid.refine(cut, click), alone.refine(cut, click)
    assert got.labels.dtype == np.uint8 and got.labels.shape == cut[got.box].shape
    assert got.box == want.box and np.array_equal(got.labels, want.labels)
    grown, extra = extra_below_lung(prediction.labels)
    negative = Click(*deepest(extra), positive=False)
    assert hybrid.heuristic is not None and not hybrid.heuristic.uses_other(negative)
    out = apply(grown, hybrid, negative)  # the other convention does not answer it: the refiner does
    assert ((grown > 0) & (out == 0)).sum() > 0.8 * extra.sum()
    assert hybrid.clicks == [click, negative] and hybrid.heuristic.clicks == [click, negative]
