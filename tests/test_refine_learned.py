"""Learned refiner (issues 19, 30): a U-Net with click inputs, warm-started from the bundled model, redraws
the region around a click (the change is the click's connected piece) or, trained on the clicked side,
the whole lung on that side (the change is every piece where it differs); painting stays."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_lung_unet.images.labels import LEFT_LUNG, RIGHT_LUNG
from napari_lung_unet.images.phantom_radiograph import make_radiograph_phantom
from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.nn.clicks import click_maps, largest_region
from napari_lung_unet.nn.model import UNet, UNetConfig
from napari_lung_unet.nn.model_io import LoadedModel, load_model, save_model
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.nn.refine import Click, RefineContext
from napari_lung_unet.nn.refine_learned import MIN_CHANGE, LearnedRefineContext, crop_at, redrawn, refiner_from_parent, side_window
from napari_lung_unet.settings import bundled_model_dir
from training.refiner_train import Episode, play_earlier_clicks, training_batch

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


def test_side_window_is_the_clicked_half_with_a_margin_past_the_midline() -> None:
    assert side_window(100, (384, 384)) == (slice(0, 384), slice(0, 208))
    assert side_window(200, (384, 384)) == (slice(0, 384), slice(176, 384))
    assert side_window(10, (64, 64)) == (slice(0, 64), slice(0, 48))


def test_redraw_merges_every_big_difference_and_the_click_not_its_noise() -> None:
    current = np.zeros((64, 64), bool)
    current[10:50, 5:25] = True
    drawn = current.copy()
    drawn[50:60, 5:25] = True  # a missed base, 200 px: merged
    drawn[2:5, 40:43] = True  # 9 px of noise away from the click: not merged
    drawn[20:30, 5:10] = False  # 50 px the redraw takes away elsewhere on the side: merged
    out = redrawn(drawn, current, (55, 15), positive=True)
    assert out[50:60, 5:25].all() and not out[20:30, 5:10].any() and not out[2:5, 40:43].any()
    assert 9 < MIN_CHANGE <= 50
    signed = redrawn(drawn, current, (55, 15), positive=True, signed=True)  # a positive click only adds lung
    assert signed[50:60, 5:25].all() and signed[20:30, 5:10].all()
    # a click whose answer the redraw does not give still sets its own pixel, and nothing else
    lone = redrawn(current, current, (0, 0), positive=True)
    assert lone[0, 0] and (lone != current).sum() == 1


def test_earlier_clicks_go_to_the_largest_error_and_the_trained_click_to_the_next() -> None:
    truth = np.zeros((64, 64), bool)
    truth[8:56, 4:28] = True  # one lung on the image's left
    mask = truth.copy()
    mask[36:56, 4:28] = False  # its base missed: 480 px, the largest error
    mask[8:16, 4:16] = False  # its apex partly missed: 96 px
    ep = Episode(torch.rand(64, 64), truth, mask.copy(), 0)
    model = UNet(UNetConfig(in_channels=4, base_channels=4, depth=2))  # its answers are not asked for here
    play_earlier_clicks(model, [ep], 1, random.Random(0), self_share=0.0)  # answered by the true fix of its region
    (r, c, positive), = ep.clicks
    assert 36 <= r < 56 and 4 <= c < 28 and positive
    assert ep.mask[36:56, 4:28].all() and not ep.mask[8:16, 4:16].any(), "the first click's region only was fixed"
    x, y, k = training_batch(model, [ep], random.Random(0), max_clicks=1, self_share=0.0)
    assert len(ep.clicks) == 2 and 8 <= ep.clicks[1][0] < 16 and 4 <= ep.clicks[1][1] < 16
    assert x.shape == (1, 4, 64, 48) and y.shape == (1, 1, 64, 48) and k.tolist() == [0]
    positives = largest_region(x[0, 2].numpy() > 0)
    assert x[0, 2].sum() > 2 * positives.sum() * 0.9 and x[0, 3].sum() == 0, "both clicks on the maps, both positive"
    assert torch.equal(y[0, 0].bool(), torch.from_numpy(truth[:, :48])), "the target is the whole true lung on the clicked side"
    assert torch.equal(x[0, 1].bool(), torch.from_numpy(ep.mask[:, :48])), "the input mask is the one the trained click is made on"


def test_side_refiner_redraws_the_whole_lung_on_the_clicked_side_only(
    warm_refiner: LoadedModel, phantom_case: tuple[np.ndarray, object], tmp_path: Path
) -> None:
    """A click in the missed base of the right lung also restores its missed apex (the whole region on that
    side), leaves the left lung's cut alone (the other side) and keeps the painted pixels."""
    image, prediction = phantom_case
    side = replace(warm_refiner.card, version="refiner-side", extra={**warm_refiner.card.extra, "window": "side"})
    refiner = load_model(save_model(tmp_path / "side", warm_refiner.model, side))
    cut, missed = missed_lower_lung(prediction.labels)
    rows = np.nonzero(prediction.labels == RIGHT_LUNG)[0]
    apex = (prediction.labels == RIGHT_LUNG) & (np.arange(cut.shape[0])[:, None] < np.percentile(rows, 15))
    left_rows = np.nonzero(prediction.labels == LEFT_LUNG)[0]
    left_cut = (prediction.labels == LEFT_LUNG) & (np.arange(cut.shape[0])[:, None] > np.median(left_rows))
    cut[apex | left_cut] = 0
    r, c = deepest(missed)
    painted = np.zeros(cut.shape, bool)
    painted[r + 4 : r + 8, :] = True
    context = LearnedRefineContext.from_prediction(refiner, prediction, image)
    out = apply(cut, context, Click(r, c, positive=True), painted)
    added = (out > 0) & (cut == 0)
    assert dice(added[~painted], (missed | apex)[~painted]) > 0.85, "the missed base and apex come back together"
    assert not added[left_cut].any(), "the other side changed"
    assert np.array_equal(out[painted], cut[painted]), "a hand-painted pixel changed"
    assert set(np.unique(out[added])) == {RIGHT_LUNG}


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
