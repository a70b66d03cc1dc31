"""The one invariant of the dock: a mask belongs to exactly one image.

Every labels layer the dock writes is *paired* with one Image layer: its metadata holds the
image's ``unique_id``, its name starts with ``lungs``, and it sits directly above its image,
visible. Every write of a mask into the viewer goes through :func:`put_labels`, so a proposal
for image A can never land in image B's layer (the layer is looked up by A's id, never by name).

``unique_id`` rather than the layer object or its name: names change and can repeat, and the
viewer napari hands a plugin gives out proxies of layers, which cannot be compared with ``is``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels

from ..images.labels import LUNG_COLOURS

if TYPE_CHECKING:
    import napari

PAIR_KEY = "lung_unet_image"  # labels-layer metadata: the unique_id of the image it belongs to
LUNGS = "lungs"  # every paired layer's name starts with this
OPACITY = 0.5
# napari's colour map for the label convention of napari_lung_unet.images.labels (RGBA 0..1)
COLORMAP: dict[int | None, Any] = {
    None: "transparent",
    0: "transparent",
    **{value: tuple(c / 255.0 for c in rgb) + (1.0,) for value, rgb in LUNG_COLOURS.items()},
}


def labels_name(image_name: str, worklist: bool) -> str:
    """``lungs`` for the worklist's reused pair; ``lungs (<image>)`` for a separately opened image."""
    return LUNGS if worklist else f"{LUNGS} ({image_name})"


def find_layer(viewer: napari.Viewer, unique_id: str | None) -> Any | None:
    if unique_id is None:
        return None
    for layer in viewer.layers:
        if layer.unique_id == unique_id:
            return layer
    return None


def index_of(viewer: napari.Viewer, layer: Any) -> int:
    for i, candidate in enumerate(viewer.layers):
        if candidate.unique_id == layer.unique_id:
            return i
    raise ValueError(f"layer {layer.name!r} is not in the viewer")


def labels_of(viewer: napari.Viewer, image: Any | None) -> Labels | None:
    """The labels layer paired with ``image``, or None."""
    if image is None:
        return None
    for layer in viewer.layers:
        if isinstance(layer, Labels) and layer.metadata.get(PAIR_KEY) == image.unique_id:
            return layer
    return None


def image_of(viewer: napari.Viewer, labels: Any | None) -> Image | None:
    """The image a labels layer belongs to, or None for a layer the dock did not pair."""
    if labels is None:
        return None
    layer = find_layer(viewer, labels.metadata.get(PAIR_KEY))
    return layer if isinstance(layer, Image) else None


def put_labels(viewer: napari.Viewer, image: Image, labels: np.ndarray, name: str, undoable: bool) -> Labels:
    """Show ``labels`` as ``image``'s mask, creating its paired layer if needed.

    ``undoable``: write the difference as one undoable edit (a re-proposal over the user's edits)
    when the shapes match; otherwise the data is replaced and the undo history starts afresh,
    so undoing can never paint another case's mask into this one.
    """
    layer = labels_of(viewer, image)
    if layer is not None and undoable and isinstance(layer.data, np.ndarray) and layer.data.shape == labels.shape:
        changed = np.nonzero(layer.data != labels)
        layer.data_setitem(changed, labels[changed])  # recorded in undo history, unlike .data = ...
    elif layer is not None and layer.ndim == labels.ndim:
        layer.data = labels
        _forget_history(layer)
    else:
        if layer is not None:
            viewer.layers.remove(layer)
        layer = viewer.add_labels(labels, name=name, opacity=OPACITY, colormap=COLORMAP, metadata={PAIR_KEY: image.unique_id})
    if layer.name != name:
        layer.name = name  # napari makes duplicate names unique itself ("lungs [1]")
    follow(layer, scale=image.scale, translate=image.translate, visible=True)
    place_above(viewer, image, layer)
    return layer


def _forget_history(layer: Labels) -> None:
    """Start the layer's undo history afresh, so undoing never paints another case's mask into it.

    napari's own reset, where it has one: the public way (toggling ``editable``) also switches the
    layer to pan/zoom and back, and each switch updates the cursor, the layer controls and the
    layer list on the GUI thread (seen in bench/gui_heartbeat.py --profile at every case switch).
    """
    reset = getattr(layer, "_reset_history", None)
    if callable(reset):
        reset()
    else:
        layer.editable = False
        layer.editable = True


def follow(layer: Any, **values: Any) -> None:
    """Set layer properties that differ. napari refreshes a layer on every assignment, even of the
    value it has (~15 ms each for a 20-Mpx mask), and a case switch would pay for several."""
    for key, value in values.items():
        current = getattr(layer, key)
        if isinstance(value, (tuple, list, np.ndarray)):
            same = np.array_equal(np.asarray(current), np.asarray(value))
        else:
            same = bool(current == value)
        if not same:
            setattr(layer, key, value)


def place_above(viewer: napari.Viewer, image: Any, labels: Any) -> None:
    """Move ``labels`` directly above ``image`` in the layer list (drawn over it, nothing between)."""
    viewer.layers.move(index_of(viewer, labels), index_of(viewer, image) + 1)  # a no-op when it is there


def raise_pair(viewer: napari.Viewer, image: Any) -> None:
    """Put ``image`` and its mask on top of every other layer, so nothing opened earlier hides them.

    Nothing moves when they are on top already (every case switch): a move makes napari and
    vispy re-stack and redraw the scene.
    """
    labels = labels_of(viewer, image)
    pair = [image.unique_id] + ([labels.unique_id] if labels is not None else [])
    if [layer.unique_id for layer in list(viewer.layers)[-len(pair):]] == pair:
        return
    viewer.layers.move(index_of(viewer, image), len(viewer.layers))
    if labels is not None:
        place_above(viewer, image, labels)
