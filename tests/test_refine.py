"""Refine engine: a click re-proposes the region around it with the real bundled model; painting stays."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from scipy import ndimage

from napari_lung_unet.images.labels import RIGHT_LUNG
from napari_lung_unet.images.phantom_radiograph import make_radiograph_phantom
from napari_lung_unet.nn.model_io import load_model
from napari_lung_unet.nn.predict import Prediction, Predictor
from napari_lung_unet.nn.refine import Click, RefineContext
from napari_lung_unet.settings import bundled_model_dir


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(load_model(bundled_model_dir()), device="cpu")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def deepest(region: np.ndarray) -> tuple[int, int]:
    """The region's point farthest from its edge: where a reviewer would click."""
    depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(r), int(c)


def apply(labels: np.ndarray, context: RefineContext, click: Click, painted: np.ndarray | None = None) -> np.ndarray:
    done = context.refine(labels, click, painted)
    out = labels.copy()
    out[done.box] = done.labels
    outside = np.ones(labels.shape, bool)
    outside[done.box] = False
    assert np.array_equal(out[outside], labels[outside]), "a refine changed pixels outside its box"
    return out


def proposal(predictor: Predictor, image: np.ndarray) -> tuple[Prediction, RefineContext]:
    prediction = predictor.predict(image)
    assert (prediction.labels == RIGHT_LUNG).sum() > 0.02 * image.size, "the model found no right lung to work on"
    return prediction, RefineContext.from_prediction(prediction)


def missed_lower_lung(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The proposal with the lower half of the right lung taken out, and that missed region."""
    rows = np.nonzero(labels == RIGHT_LUNG)[0]
    missed = (labels == RIGHT_LUNG) & (np.arange(labels.shape[0])[:, None] > np.median(rows))
    cut = labels.copy()
    cut[missed] = 0
    return cut, missed


def extra_below_lung(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The proposal with a disc of false lung hanging below the right lung's base, and that extra region."""
    rows, cols = np.nonzero(labels == RIGHT_LUNG)
    radius = 0.06 * labels.shape[0]
    yy, xx = np.ogrid[: labels.shape[0], : labels.shape[1]]
    disc = (yy - (rows.max() + 0.6 * radius)) ** 2 + (xx - np.median(cols)) ** 2 <= radius**2
    extra = disc & (labels == 0)
    grown = labels.copy()
    grown[extra] = RIGHT_LUNG
    return grown, extra


def check_positive_click(predictor: Predictor, image: np.ndarray) -> None:
    prediction, context = proposal(predictor, image)
    cut, missed = missed_lower_lung(prediction.labels)
    r, c = deepest(missed)
    painted = np.zeros(cut.shape, bool)
    painted[r + 4 : r + 8, :] = True  # the reviewer painted this band as background by hand
    out = apply(cut, context, Click(r, c, positive=True), painted)
    unpainted = missed & ~painted
    grown = (out > 0) & (cut == 0)
    # one click redoes a crop around it (0.15 of the model's input side): a large region is fixed in part
    assert (out[unpainted] > 0).mean() > 0.1, "a positive click in a missed region did not grow the lung there"
    assert (grown & ~missed).sum() < 0.1 * grown.sum(), "the lung grew mostly outside the missed region"
    assert np.array_equal(out[painted], cut[painted]), "hand-painted pixels changed"
    assert (out[missed & (out > 0)] == RIGHT_LUNG).all(), "grown lung took the other lung's label"


def check_negative_click(predictor: Predictor, image: np.ndarray) -> None:
    prediction, context = proposal(predictor, image)
    grown, extra = extra_below_lung(prediction.labels)
    r, c = deepest(extra)
    painted = np.zeros(grown.shape, bool)
    painted[r - 6 : r - 2, :] = grown[r - 6 : r - 2, :] > 0  # lung the reviewer painted across it by hand
    out = apply(grown, context, Click(r, c, positive=False), painted)
    assert (out[extra & ~painted] == 0).mean() > 0.3, "a negative click on an extra region did not shrink it"
    assert np.array_equal(out[painted], grown[painted]), "hand-painted pixels changed"
    lung = prediction.labels > 0
    assert (out[lung] > 0).mean() > 0.97, "a negative click took away the proposal's own lung"


def test_positive_click_grows_missed_lung_on_phantom(predictor: Predictor) -> None:
    image, _ = make_radiograph_phantom((512, 512), seed=1)
    check_positive_click(predictor, image)


def test_negative_click_shrinks_extra_region_on_phantom(predictor: Predictor) -> None:
    image, _ = make_radiograph_phantom((512, 512), seed=1)
    check_negative_click(predictor, image)


def covid_image(real_data: Path) -> np.ndarray:
    path = sorted((real_data / "covid_v7labs" / "images").glob("*.png"))[1]
    return np.asarray(iio.imread(path))


def test_clicks_on_a_real_covid_xray(predictor: Predictor, real_data: Path) -> None:
    image = covid_image(real_data)
    check_positive_click(predictor, image)
    check_negative_click(predictor, image)


def test_click_on_its_own_missed_retrocardiac_lung(predictor: Predictor, real_data: Path) -> None:
    """The real error at a new site: the lung-fields proposal misses whole lung the V7 mask includes."""
    case = sorted((real_data / "covid_v7labs" / "images").glob("*.png"))[1]
    image = np.asarray(iio.imread(case))
    truth = np.asarray(iio.imread(real_data / "covid_v7labs" / "masks" / case.name)) > 0
    prediction, context = proposal(predictor, image)
    missed = truth & (prediction.labels == 0)
    pieces, _ = ndimage.label(missed, np.ones((3, 3)))
    largest = pieces == np.argmax(np.bincount(pieces.ravel())[1:]) + 1
    r, c = deepest(largest)
    out = apply(prediction.labels, context, Click(r, c, positive=True))
    assert out[r, c] > 0 and (out[largest] > 0).sum() > 0.05 * largest.sum(), "the click did not grow the missed lung"
    assert dice(out > 0, truth) > dice(prediction.labels > 0, truth), "the click made the mask worse"


def test_a_click_takes_the_other_conventions_region(predictor: Predictor) -> None:
    """With a model that knows two conventions, a positive click where the other one says lung takes its
    region around the click. Here the other convention is the model's own full proposal, the current
    mask that proposal without its lower right lung: one click brings nearly all of it back."""
    image, _ = make_radiograph_phantom((512, 512), seed=1)
    prediction = predictor.predict(image)
    cut, missed = missed_lower_lung(prediction.labels)
    faint = np.full_like(prediction.small_probability, 1e-3)  # this convention sees nothing there
    r, c = deepest(missed)
    alone = apply(cut, RefineContext(faint, cut.shape), Click(r, c, positive=True))
    both = apply(cut, RefineContext(faint, cut.shape, prediction.small_probability), Click(r, c, positive=True))
    assert (both[missed] > 0).mean() > 0.8, "the other convention's region was not taken"
    assert (both[missed] > 0).mean() > (alone[missed] > 0).mean() + 0.3
    assert ((both > 0) & (prediction.labels == 0)).sum() < 0.05 * missed.sum(), "it took more than the other region"


def test_bad_input_is_refused_by_name(predictor: Predictor) -> None:
    image, _ = make_radiograph_phantom((256, 256), seed=2)
    prediction, context = proposal(predictor, image)
    with pytest.raises(ValueError, match="do not match"):
        context.refine(prediction.labels[:-1], Click(10, 10, True))
    with pytest.raises(ValueError, match="outside the image"):
        context.refine(prediction.labels, Click(256, 10, True))


def test_a_click_keeps_its_answer_against_a_later_one(predictor: Predictor) -> None:
    """A negative click on a positive click's overshoot trims it; the positive click's own pixel stays lung."""
    image, _ = make_radiograph_phantom((512, 512), seed=1)
    prediction, context = proposal(predictor, image)
    cut, missed = missed_lower_lung(prediction.labels)
    r, c = deepest(missed)
    once = apply(cut, context, Click(r, c, positive=True))
    assert once[r, c] > 0
    twice = apply(once, context, Click(r + 6, c, positive=False))
    assert twice[r, c] > 0, "a later negative click took back the pixel an earlier positive click asked for"
    assert twice[r + 6, c] == 0, "the negative click left its own pixel as lung"



def test_where_the_log_odds_are_flat_a_click_grows_no_square(predictor: Predictor) -> None:
    """Behind the heart the model's log-odds are flat: they bound nothing, so the click's depth (its
    distance to the current mask) must. Here the proposal missed a thin band along the right lung's
    edge; the grown lung stays mostly inside that band instead of filling a square around the click."""
    image, _ = make_radiograph_phantom((512, 512), seed=1)
    prediction = predictor.predict(image)
    lung = prediction.labels == RIGHT_LUNG
    band = lung & ~ndimage.binary_erosion(lung, iterations=10)  # 10 px of the lung's edge missed
    cut = np.where(band, 0, prediction.labels).astype(np.uint8)
    flat = np.full_like(prediction.small_probability, 0.2)  # the same faint lung everywhere
    r, c = deepest(band)
    out = apply(cut, RefineContext(flat, cut.shape), Click(r, c, positive=True))
    grown = (out > 0) & (cut == 0)
    assert grown.sum() > 0.02 * band.sum(), "the click did not grow the missed lung"
    assert (grown & ~band).sum() < 0.5 * grown.sum(), "flat log-odds let the lung grow mostly outside the missed band"
