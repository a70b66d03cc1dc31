"""Lung labels as a DICOM Segmentation (SEG) of a source radiograph, and back.

Segment numbers, names, SNOMED CT codes and colours come from :mod:`napari_lung_unet.images.labels`.
The SEG lives in the source's study, references the source SOP Instance UID, has the source's
rows and columns, and names the model version in its algorithm identification, so PACS viewers
(OHIF, 3D Slicer) overlay it on the right image.

The lung convention the masks are drawn in (:mod:`napari_lung_unet.images.conventions`) is said in
each segment's Segment Description (0062,0006), "Right lung (whole-lung convention)": DICOM's
free-text field for what one segment covers, which viewers show beside the segment's label. It is
also in the SEG's Series Description, which PACS study browsers list. No coded concept names the
two conventions, so the SNOMED CT property types stay "Right lung" / "Left lung" either way.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..images.conventions import NAMES, check_convention
from ..images.errors import ImageError, _short, check_pixel_budget
from ..images.labels import ANATOMICAL_STRUCTURE, LUNGS, Code
from ..store.atomic import atomic_write

if TYPE_CHECKING:  # highdicom and pydicom load lazily, only when a SEG is made or read
    from highdicom import PixelMeasuresSequence
    from highdicom.seg import Segmentation
    from pydicom.dataset import Dataset
    from pydicom.sr.coding import Code as DicomCode

SEG_SUFFIX = ".seg.dcm"
SERIES_NUMBER = 900  # a high number keeps the derived series after the modality's own in viewers
ALGORITHM_NAME = "napari-lung-unet"
SERIES_DESCRIPTION = "Lung segmentation"
EXPECTED_DICE_TEXT = ", expected Dice "
_EXPECTED_DICE = re.compile(re.escape(EXPECTED_DICE_TEXT) + r"([01]\.\d+)")
_CONVENTION_NOTE = re.compile(r"\((" + "|".join(map(re.escape, NAMES)) + r") convention\)")


class SegError(ImageError):
    """A SEG cannot be made for this source, or a file is not a SEG this plugin can read; the message says why."""


def make_seg(
    source: Dataset, labels: np.ndarray, model_version: str, reviewed: bool = False, convention: str | None = None,
    expected_dice: float | None = None,
) -> Segmentation:
    """A highdicom Segmentation of ``labels`` (0/1/2 at the source's size) for the ``source`` header.

    ``source`` may lack pixel data (a header read with ``stop_before_pixels``): highdicom reads
    only identifying and geometry attributes from it. ``reviewed`` labels came from a person
    correcting the model's proposal: DICOM calls that SEMIAUTOMATIC, and viewers show it.
    ``convention``: the lung convention the labels are drawn in, said in each segment's and the
    series' description (None: not said, as in SEGs written before conventions existed).
    ``expected_dice``: the model's estimate of the mask's Dice (nn/quality.py), said in each segment's
    description as ", expected Dice 0.9731" (DICOM has no attribute for an estimated overlap;
    :func:`seg_expected_dice` reads it back). None for a person's mask.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    note = f" ({check_convention(convention)} convention)" if convention else ""
    labels = np.asarray(labels)
    if labels.shape != (int(source.Rows), int(source.Columns)):
        raise SegError(f"labels are {labels.shape[0]}×{labels.shape[1]} but the image is {source.Rows}×{source.Columns}")
    algorithm = hd.AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME, family=codes.DCM.ArtificialIntelligence, version=model_version
    )
    kind = hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC if reviewed else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    segments = [
        hd.seg.SegmentDescription(
            segment_number=lung.value,
            segment_label=lung.name,
            segmented_property_category=_code(ANATOMICAL_STRUCTURE),
            segmented_property_type=_code(lung.code),
            algorithm_type=kind,
            algorithm_identification=algorithm,
            display_color=hd.color.CIELabColor.from_rgb(*lung.colour),
        )
        for lung in LUNGS
    ]
    estimate = f"{EXPECTED_DICE_TEXT}{expected_dice:.4f}" if expected_dice is not None else ""
    for lung, segment in zip(LUNGS, segments):
        if note or estimate:  # highdicom has no argument for this optional attribute; it is a plain Dataset
            segment.SegmentDescription = f"{lung.name}{note}{estimate}"  # LO: at most 64 characters, ~56 here
    software = _software_version()
    seg = hd.seg.Segmentation(
        source_images=[_with_empty_type2(source)],
        pixel_array=labels.astype(np.uint8),  # a label map: each value is its segment number
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments,
        series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=ALGORITHM_NAME,
        manufacturer_model_name=f"Lung U-Net {model_version}",
        software_versions=software,
        device_serial_number=software,
        content_label="LUNGS",
        content_description=f"Lung segmentation by model {model_version}" + (", reviewed" if reviewed else ""),
        # a projection radiograph has no patient-space geometry; its detector spacing is all
        # a viewer can align with, and highdicom does not carry ImagerPixelSpacing over by itself
        pixel_measures=_pixel_measures(source),
        omit_empty_frames=False,  # an empty lung is still an answer: keep one frame per segment
    )
    seg.SeriesDescription = SERIES_DESCRIPTION + note
    return seg


# Patient and study attributes the SEG copies from its source. DICOM makes them type 2 (present,
# may be empty), but de-identified archives often drop them altogether; highdicom then fails on
# the missing attribute. Empty is what type 2 allows, and what the source meant.
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "StudyID", "AccessionNumber", "ReferringPhysicianName")


def _with_empty_type2(source: Dataset) -> Dataset:
    """``source``, or a shallow copy of it with the copied type-2 attributes it lacks present and empty."""
    missing = [k for k in _TYPE2_COPIED if k not in source]
    if "StudyInstanceUID" not in source:
        raise SegError("the DICOM source has no StudyInstanceUID, so a SEG cannot be placed in its study")
    if not missing:
        return source
    from pydicom.dataset import Dataset

    header = Dataset()  # copy.copy and Dataset(source) share the element dict: the caller's would change
    header.update(source)  # the elements themselves (pixel data too) are shared, not copied
    if hasattr(source, "file_meta"):
        header.file_meta = source.file_meta
    for keyword in missing:
        setattr(header, keyword, "")
    return header


def write_seg(path: str | Path, source: Dataset, labels: np.ndarray, model_version: str, convention: str | None = None) -> Path:
    """Write the SEG for ``labels`` atomically to ``path``."""
    return save_seg(make_seg(source, labels, model_version, convention=convention), path)


def save_seg(seg: Segmentation, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: seg.save_as(tmp, enforce_file_format=True))


# what a SEG must copy or reference from its source, so a PACS files it with the right study
_SOURCE_IDENTITY = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


def seg_for_image(
    image_path: str | Path, labels: np.ndarray, model_version: str, reviewed: bool = False, convention: str | None = None,
    expected_dice: float | None = None,
) -> Segmentation:
    """The SEG of ``labels`` for the DICOM X-ray at ``image_path`` (its header is re-read, not its pixels)."""
    from .read import read_header

    source = read_header(Path(image_path))
    missing = [key for key in _SOURCE_IDENTITY if not str(getattr(source, key, "") or "")]
    if missing:
        raise SegError(f"{image_path}: cannot make a DICOM SEG: the image has no {', '.join(missing)}")
    try:
        return make_seg(source, labels, model_version, reviewed, convention, expected_dice)
    except SegError:  # already says why
        raise
    except Exception as exc:  # highdicom validates the source in many ways; each is this image's failure
        raise SegError(f"{image_path}: cannot make a DICOM SEG ({type(exc).__name__}: {_short(exc)})") from None


def write_seg_for_image(
    image_path: str | Path, target: str | Path, labels: np.ndarray, model_version: str, convention: str | None = None,
    expected_dice: float | None = None,
) -> Path:
    """Write the SEG of ``labels`` for the DICOM X-ray at ``image_path`` atomically to ``target``."""
    return save_seg(seg_for_image(image_path, labels, model_version, convention=convention, expected_dice=expected_dice), target)


def seg_bytes(seg: Segmentation) -> bytes:
    """The SEG as DICOM file bytes (to hash and store with a corrections case, say)."""
    buffer = BytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def is_seg(path: str | Path) -> bool:
    """True when ``path`` is a DICOM Segmentation (its header says so; the name is not trusted)."""
    from pydicom.uid import SegmentationStorage

    from .read import read_header

    try:
        return str(getattr(read_header(Path(path)), "SOPClassUID", "")) == SegmentationStorage
    except ImageError:  # not DICOM or unreadable: not a SEG (read_xray will say what it is)
        return False


def read_seg(path: str | Path) -> tuple[np.ndarray, tuple[float, float] | None, str | None]:
    """``(labels, spacing_mm, source SOP Instance UID)`` from a lung SEG: labels 0/1/2 at the source's size.

    Segments are matched to label values by their SNOMED CT property type, not by number, so a
    SEG from another tool with the same codes reads with the same convention.
    """
    import highdicom as hd

    path = Path(path)
    _check_seg_header(path)
    try:
        seg = hd.seg.segread(path)
    except Exception as exc:
        raise SegError(f"{path}: not a readable DICOM Segmentation ({type(exc).__name__}: {exc})") from None
    by_code = {(lung.code.value, lung.code.scheme): lung.value for lung in LUNGS}
    labels = np.zeros((int(seg.Rows), int(seg.Columns)), np.uint8)
    found = False
    for number in seg.segment_numbers:
        prop = seg.get_segment_description(number).segmented_property_type
        value = by_code.get((str(prop.value), str(prop.scheme_designator)))
        if value is None:
            continue
        found = True
        frames = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[_source_uid(seg)], segment_numbers=[number], combine_segments=False,
            ignore_spatial_locations=True, assert_missing_frames_are_empty=True,
        )
        labels[np.asarray(frames)[0, ..., 0] > 0] = value
    if not found:
        raise SegError(f"{path}: DICOM Segmentation has no right-lung or left-lung segment")
    return labels, _seg_spacing(seg), _source_uid(seg)


def seg_convention(path: str | Path) -> str | None:
    """The lung convention a SEG says its segments are drawn in, from its header; None when it does not say."""
    from .read import read_header

    header = read_header(Path(path))
    texts = [str(getattr(item, "SegmentDescription", "")) for item in getattr(header, "SegmentSequence", [])]
    for text in [*texts, str(getattr(header, "SeriesDescription", ""))]:
        found = _CONVENTION_NOTE.search(text)
        if found:
            return found.group(1)
    return None


# a lung SEG has one frame per segment (two); other tools' projection SEGs have a few more.
# Frames decode to a byte per pixel each: 16 frames of the largest image the budget admits is 400 MB
MAX_SEG_FRAMES = 16


def seg_expected_dice(path: str | Path) -> float | None:
    """The expected Dice a SEG's segment descriptions state (the first that says one); None when none does."""
    from .read import read_header

    header = read_header(Path(path))
    for item in getattr(header, "SegmentSequence", []):
        found = _EXPECTED_DICE.search(str(getattr(item, "SegmentDescription", "")))
        if found:
            return float(found.group(1))
    return None


def _check_seg_header(path: Path) -> None:
    """Refuse, from the header (never inflated or decoded whole), a SEG over the pixel budget."""
    from .read import read_header

    header = read_header(path)
    try:
        rows, cols = int(header.Rows), int(header.Columns)
        frames = int(getattr(header, "NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        raise SegError(f"{path}: DICOM Segmentation has no valid Rows/Columns/NumberOfFrames") from None
    check_pixel_budget(path, (rows, cols), rows * cols)  # the labels layer it becomes
    if not 1 <= frames <= MAX_SEG_FRAMES:
        raise SegError(f"{path}: DICOM Segmentation has {frames} frames; at most {MAX_SEG_FRAMES} (one per segment) are read")


def _source_uid(seg: Dataset) -> str | None:
    for series in getattr(seg, "ReferencedSeriesSequence", []):
        for instance in getattr(series, "ReferencedInstanceSequence", []):
            return str(instance.ReferencedSOPInstanceUID)
    return None


def _seg_spacing(seg: Dataset) -> tuple[float, float] | None:
    from .read import pixel_spacing

    try:
        return pixel_spacing(seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0])
    except (AttributeError, IndexError):
        return None


def _pixel_measures(source: Dataset) -> PixelMeasuresSequence | None:
    import highdicom as hd

    from .read import pixel_spacing

    spacing = pixel_spacing(source)
    if spacing is None:
        return None
    # a projection has no slice thickness and the standard lets it be absent (1C), but highdicom's
    # own reader (segread) refuses pixel measures without it: write a nominal 1 mm
    return hd.PixelMeasuresSequence(pixel_spacing=list(spacing), slice_thickness=1.0)


def _code(code: Code) -> DicomCode:
    from pydicom.sr.coding import Code as DicomCode

    return DicomCode(code.value, code.scheme, code.meaning)


def _software_version() -> str:
    try:
        return version("napari-lung-unet")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
