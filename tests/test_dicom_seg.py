"""DICOM SEG output: predict --seg writes a standard Segmentation; pydicom and napari read it back aligned."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pydicom
import pytest
from dicom_files import SPACING, reference_xray, write_radiograph

from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.cli import main
from napari_lung_unet.dicom.seg import make_seg, read_seg, write_seg
from napari_lung_unet.images.labels import LUNGS

SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """A folder with a JPEG 2000 DX, an uncompressed DX and a PNG (which gets no SEG), of a shipped CC BY X-ray."""
    folder = tmp_path / "in"
    folder.mkdir()
    image, _lungs = reference_xray()
    write_radiograph(folder / "chest_j2k.dcm", image, "jpeg2000")
    write_radiograph(folder / "chest.dcm", image[:352, :320], "explicit")
    iio.imwrite(folder / "plain.png", image)
    return folder


def segment_masks(seg: pydicom.Dataset) -> np.ndarray:
    """Labels 0/1/2 rebuilt with pydicom alone: frame i belongs to segment ReferencedSegmentNumber."""
    frames = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
    labels = np.zeros(frames.shape[1:], np.uint8)
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        labels[frame > 0] = number
    return labels


def test_predict_seg_round_trip(tmp_path: Path, inputs: Path) -> None:
    out = tmp_path / "out"
    assert main(["predict", str(inputs), "-o", str(out), "--seg", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "chest.png", "chest.seg.dcm", "chest_j2k.png", "chest_j2k.seg.dcm", "plain.png", "results.csv",
    ]
    for stem in ("chest", "chest_j2k"):
        source = pydicom.dcmread(inputs / f"{stem}.dcm", stop_before_pixels=True)
        seg = pydicom.dcmread(out / f"{stem}.seg.dcm")
        png = iio.imread(out / f"{stem}.png")
        assert seg.SOPClassUID == SEG_CLASS and seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
        assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.PatientID == source.PatientID
        assert seg.SeriesInstanceUID != source.SeriesInstanceUID
        assert (seg.Rows, seg.Columns) == (source.Rows, source.Columns) == png.shape
        [ref] = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
        segments = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
        assert sorted(segments) == [1, 2]
        for lung in LUNGS:
            segment = segments[lung.value]
            assert segment.SegmentLabel == lung.name
            code = segment.SegmentedPropertyTypeCodeSequence[0]
            assert (code.CodeValue, code.CodingSchemeDesignator) == (lung.code.value, "SCT")
            assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "123037004"
            algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
            assert algorithm.AlgorithmName == "napari-lung-unet" and algorithm.AlgorithmVersion == Registry().load().card.version  # the model that drew it
        spacing = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        assert tuple(map(float, spacing)) == SPACING  # from the DX's ImagerPixelSpacing
        labels = segment_masks(seg)
        np.testing.assert_array_equal(labels, png)
        assert (labels == 1).sum() > 1000 and (labels == 2).sum() > 1000


def test_empty_lung_still_gets_its_segment(tmp_path: Path) -> None:
    image = (np.random.default_rng(0).random((64, 80)) * 255).astype(np.uint8)
    source = pydicom.dcmread(write_radiograph(tmp_path / "x.dcm", image), stop_before_pixels=True)
    labels = np.zeros((64, 80), np.uint8)
    labels[10:30, 5:20] = 1  # no left lung at all
    write_seg(tmp_path / "x.seg.dcm", source, labels, "v1")
    seg = pydicom.dcmread(tmp_path / "x.seg.dcm")
    assert len(seg.SegmentSequence) == 2 and int(seg.NumberOfFrames) == 2
    np.testing.assert_array_equal(segment_masks(seg), labels)
    np.testing.assert_array_equal(read_seg(tmp_path / "x.seg.dcm")[0], labels)


def test_a_source_without_patient_attributes_still_gets_a_seg(tmp_path: Path) -> None:
    """De-identified archives drop type-2 attributes (PatientName, StudyDate, ...) altogether; the SEG
    then carries them empty, and the caller's dataset is left as it was."""
    image = (np.random.default_rng(0).random((64, 80)) * 255).astype(np.uint8)
    path = write_radiograph(tmp_path / "x.dcm", image)
    source = pydicom.dcmread(path)
    for keyword in ("PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "AccessionNumber"):
        if keyword in source:
            delattr(source, keyword)
    source.save_as(path)
    source = pydicom.dcmread(path, stop_before_pixels=True)
    labels = np.zeros((64, 80), np.uint8)
    labels[10:30, 5:20], labels[10:30, 50:70] = 1, 2
    write_seg(tmp_path / "x.seg.dcm", source, labels, "v1")
    seg = pydicom.dcmread(tmp_path / "x.seg.dcm")
    assert str(seg.PatientName) == "" and seg.StudyInstanceUID == source.StudyInstanceUID
    np.testing.assert_array_equal(read_seg(tmp_path / "x.seg.dcm")[0], labels)
    assert "PatientName" not in source


def test_labels_of_another_size_are_refused(tmp_path: Path) -> None:
    from napari_lung_unet.dicom.seg import SegError

    image = (np.random.default_rng(0).random((64, 80)) * 255).astype(np.uint8)
    source = pydicom.dcmread(write_radiograph(tmp_path / "x.dcm", image), stop_before_pixels=True)
    with pytest.raises(SegError, match="labels are 64×64 but the image is 64×80"):
        make_seg(source, np.zeros((64, 64), np.uint8), "v1")


def test_seg_is_not_read_as_an_x_ray(tmp_path: Path) -> None:
    from napari_lung_unet.images.read import ImageError, read_xray

    image = (np.random.default_rng(0).random((64, 80)) * 255).astype(np.uint8)
    source = pydicom.dcmread(write_radiograph(tmp_path / "x.dcm", image), stop_before_pixels=True)
    labels = np.zeros((64, 80), np.uint8)
    labels[:, :40] = 1
    write_seg(tmp_path / "x.seg.dcm", source, labels, "v1")
    with pytest.raises(ImageError, match="is a DICOM Segmentation"):
        read_xray(tmp_path / "x.seg.dcm")


@pytest.mark.gui
def test_napari_opens_seg_as_labels_aligned_with_its_source(tmp_path: Path, inputs: Path, make_napari_viewer) -> None:
    from napari.layers import Image, Labels

    out = tmp_path / "out"
    assert main(["predict", str(inputs / "chest_j2k.dcm"), "-o", str(out), "--seg", "--device", "cpu"]) == 0
    viewer = make_napari_viewer()
    [image] = viewer.open(str(inputs / "chest_j2k.dcm"), plugin="napari-lung-unet")
    [labels] = viewer.open(str(out / "chest_j2k.seg.dcm"), plugin="napari-lung-unet")
    assert isinstance(image, Image) and isinstance(labels, Labels)
    assert labels.data.shape == image.data.shape
    np.testing.assert_array_equal(labels.scale, image.scale)
    np.testing.assert_array_equal(labels.scale, SPACING)
    np.testing.assert_array_equal(labels.translate, image.translate)
    np.testing.assert_array_equal(labels.data, iio.imread(out / "chest_j2k.png"))
    assert labels.name == "lungs (chest_j2k)"


def test_image_that_cannot_have_a_seg_fails_alone_and_leaves_no_output(
    tmp_path: Path, tiny_model_dir: Path, capsys
) -> None:
    """A DICOM without study/series UIDs: its SEG cannot be filed, so its PNG is not left either."""
    image = (np.random.default_rng(0).random((64, 80)) * 255).astype(np.uint8)
    folder = tmp_path / "in"
    folder.mkdir()
    write_radiograph(folder / "good.dcm", image)
    bad = write_radiograph(folder / "anonymous.dcm", image)
    ds = pydicom.dcmread(bad)
    del ds.StudyInstanceUID, ds.SeriesInstanceUID
    ds.save_as(bad, enforce_file_format=True)
    out = tmp_path / "out"
    assert main(["predict", str(folder), "-o", str(out), "--seg", "--model", str(tiny_model_dir)]) == 1
    err = capsys.readouterr().err
    assert f"FAILED {bad}: cannot make a DICOM SEG: the image has no StudyInstanceUID, SeriesInstanceUID" in err
    assert sorted(p.name for p in out.iterdir()) == ["good.png", "good.seg.dcm", "results.csv"]
