"""Checks for label masks wherever they enter: the corrections store and training datasets.

A mask is a 2-D integer image of the labels 0/1/2 (see ``labels.py``), or a binary 0/255
image as most datasets ship. Anything else (0-255 noise, colour, 16-bit garbage, another
size than its image) would silently train the model on wrong targets, so it is refused with
one line that names where the mask came from.
"""

from __future__ import annotations

import numpy as np

from .labels import BACKGROUND, LEFT_LUNG

BINARY_ON = 255


class MaskError(ValueError):
    """A mask is not a label image for its X-ray; the message names the file or case."""


def checked_mask(mask: np.ndarray, shape: tuple[int, ...], source: object, binary_255: bool = True) -> np.ndarray:
    """The 2-D mask for an image of ``shape``; raise ``MaskError`` naming ``source`` if it is not one.

    RGB masks are accepted when all three channels are equal (a grey image saved as colour).
    ``binary_255=False`` admits only the labels themselves (what the corrections store holds).
    """
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[-1] == 3:
        if not (np.array_equal(m[..., 0], m[..., 1]) and np.array_equal(m[..., 0], m[..., 2])):
            raise MaskError(f"{source}: mask is colour (its RGB channels differ); expected a grey label image")
        m = m[..., 0]
    if m.ndim != 2:
        raise MaskError(f"{source}: mask has shape {m.shape}; expected a 2-D label image")
    if m.dtype == bool:
        m = m.astype(np.uint8)
    if m.dtype.kind not in "iu":
        raise MaskError(f"{source}: mask values are {m.dtype}; expected integer labels")
    if tuple(m.shape) != tuple(shape[:2]):
        raise MaskError(f"{source}: mask is {m.shape[0]}×{m.shape[1]} but its image is {shape[0]}×{shape[1]}")
    if m.size and not (m.min() >= BACKGROUND and m.max() <= LEFT_LUNG):
        if not (binary_255 and np.all((m == BACKGROUND) | (m == BINARY_ON))):
            found = np.unique(m)
            shown = ", ".join(str(v) for v in found[:6]) + (", ..." if len(found) > 6 else "")
            allowed = "0/1/2 labels or binary 0/255" if binary_255 else "the labels 0/1/2"
            raise MaskError(f"{source}: mask values {shown} are not {allowed}")
    return m
