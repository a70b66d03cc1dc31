"""napari sample-data contribution: the synthetic chest radiograph and its true lung labels."""

from __future__ import annotations

from typing import Any

from .images.phantom_radiograph import make_radiograph_phantom

SAMPLE_SHAPE = (512, 512)
SAMPLE_SEED = 0


def make_chest_phantom() -> list[tuple[Any, dict[str, Any], str]]:
    """The radiograph phantom (the first screen without real data) plus its truth as a hidden labels layer.

    The truth starts hidden so that it does not get mistaken for (or cover) a model proposal;
    toggle it on to compare.
    """
    image, truth = make_radiograph_phantom(SAMPLE_SHAPE, seed=SAMPLE_SEED)
    source = {"source": "napari_lung_unet.images.phantom_radiograph.make_radiograph_phantom", "seed": SAMPLE_SEED}
    return [
        (image, {"name": "chest phantom", "colormap": "gray", "metadata": source}, "image"),
        (truth, {"name": "phantom truth", "visible": False, "opacity": 0.5, "metadata": source}, "labels"),
    ]
