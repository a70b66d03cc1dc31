"""The one label convention: 0 background, 1 right lung, 2 left lung.

Values, display names, SNOMED CT codes (for DICOM SEG) and colours all come from here, so the
PNG masks, the napari layers, the overlay and the DICOM Segmentation objects cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

BACKGROUND, RIGHT_LUNG, LEFT_LUNG = 0, 1, 2


@dataclass(frozen=True)
class Code:
    """A coded concept as DICOM writes it: (value, scheme designator, meaning)."""

    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class LungLabel:
    value: int
    name: str
    code: Code  # the segmented property type
    colour: tuple[int, int, int]  # RGB 0-255


# SNOMED CT "Anatomical structure": the segmented property category both lungs belong to
ANATOMICAL_STRUCTURE = Code("123037004", "SCT", "Anatomical Structure")

# the patient's right lung is on the image's left in a standard PA view;
# right lung teal, left lung orange: distinguishable for the common colour-vision deficiencies
LUNGS: tuple[LungLabel, ...] = (
    LungLabel(RIGHT_LUNG, "Right lung", Code("3341006", "SCT", "Right lung"), (0, 190, 200)),
    LungLabel(LEFT_LUNG, "Left lung", Code("44029006", "SCT", "Left lung"), (255, 140, 0)),
)

LUNG_COLOURS: dict[int, tuple[int, int, int]] = {lung.value: lung.colour for lung in LUNGS}
LABEL_NAMES: dict[int, str] = {BACKGROUND: "Background", **{lung.value: lung.name for lung in LUNGS}}

# napari's Labels colour map for this convention (RGBA 0..1); background and unset are transparent
NAPARI_COLORMAP: dict[int | None, tuple[float, float, float, float] | str] = {
    None: "transparent",
    BACKGROUND: "transparent",
    **{value: (*(c / 255.0 for c in rgb), 1.0) for value, rgb in LUNG_COLOURS.items()},
}
