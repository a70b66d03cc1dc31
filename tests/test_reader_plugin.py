"""The DICOM reader and labels writer as napari contributions: direct calls, npe2 and a viewer."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from napari.layers import Labels

from napari_lung_unet._reader import napari_get_reader, read_dicom
from napari_lung_unet._writer import write_labels
from napari_lung_unet.images.read import ImageError

PLUGIN = "napari-lung-unet"
SPACING = (0.2, 0.3)
SLOPE, INTERCEPT = 2.0, -100.0


def write_dicom(path: Path, raw: np.ndarray, photometric: str = "MONOCHROME1") -> Path:
    """A minimal but standard single-frame radiograph, as a modality would write it."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = raw.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelSpacing = list(SPACING)
    ds.RescaleSlope, ds.RescaleIntercept = SLOPE, INTERCEPT
    ds.PixelData = raw.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)  # preamble + "DICM", so extension-less files sniff
    return path


@pytest.fixture
def raw() -> np.ndarray:
    rng = np.random.default_rng(7)
    raw = rng.integers(100, 4000, size=(64, 48)).astype(np.uint16)
    raw[:16, :16] = 4095  # a block the scanner stored as brightest; MONOCHROME1 means it is air (dark)
    return raw


@pytest.fixture
def dicom_path(tmp_path: Path, raw: np.ndarray) -> Path:
    return write_dicom(tmp_path / "chest.dcm", raw)


def expected_pixels(raw: np.ndarray) -> np.ndarray:
    hu = raw.astype(np.float32) * SLOPE + INTERCEPT  # modality LUT
    return hu.max() + hu.min() - hu  # MONOCHROME1 inverted


def test_reader_reads_monochrome1_dicom_with_spacing(dicom_path: Path, raw: np.ndarray):
    reader = napari_get_reader(str(dicom_path))
    assert reader is read_dicom

    [(data, meta, layer_type)] = reader(str(dicom_path))

    assert layer_type == "image"
    assert meta["name"] == "chest"
    assert meta["scale"] == SPACING
    assert meta["metadata"] == {"spacing_mm": SPACING, "source_path": str(dicom_path)}
    assert data.dtype == np.float32 and data.shape == raw.shape
    np.testing.assert_allclose(data, expected_pixels(raw))
    assert data[:16, :16].max() == data.min()  # the stored-brightest block now reads darkest


def test_monochrome2_is_not_inverted(tmp_path: Path, raw: np.ndarray):
    path = write_dicom(tmp_path / "mono2.dcm", raw, photometric="MONOCHROME2")
    [(data, _, _)] = read_dicom(path)
    np.testing.assert_allclose(data, raw.astype(np.float32) * SLOPE + INTERCEPT)


def test_reader_sniffs_extension_less_dicom_and_declines_other_files(tmp_path: Path, raw: np.ndarray, phantom_png):
    bare = write_dicom(tmp_path / "IM0001", raw)
    assert napari_get_reader(str(bare)) is read_dicom
    assert napari_get_reader([str(bare), str(bare)]) is read_dicom
    assert napari_get_reader(str(phantom_png)) is None  # napari's built-in reader handles PNG
    assert napari_get_reader([str(bare), str(phantom_png)]) is None
    (tmp_path / "notes").write_text("not a dicom")
    assert napari_get_reader(str(tmp_path / "notes")) is None


def test_corrupt_dicom_raises_a_clear_image_error(tmp_path: Path, dicom_path: Path):
    corrupt = tmp_path / "corrupt.dcm"
    corrupt.write_bytes(dicom_path.read_bytes()[:300])  # truncated inside the header
    reader = napari_get_reader(str(corrupt))
    assert reader is not None  # a .dcm is ours to read, and ours to explain when it is broken

    with pytest.raises(ImageError) as info:
        reader(str(corrupt))

    message = str(info.value)
    assert str(corrupt) in message
    assert "DICOM" in message


def test_manifest_routes_dicom_to_the_plugin_and_png_elsewhere(dicom_path: Path, phantom_png: Path, raw):
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    readers = {r.plugin_name for r in pm.iter_compatible_readers([str(dicom_path)])}
    assert PLUGIN in readers
    assert PLUGIN not in {r.plugin_name for r in pm.iter_compatible_readers([str(phantom_png)])}

    [(data, meta, _)] = npe2.read([str(dicom_path)], plugin_name=PLUGIN, stack=False)
    assert meta["scale"] == SPACING
    np.testing.assert_allclose(data, expected_pixels(raw))


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
def test_writer_round_trips_labels(tmp_path: Path, suffix: str):
    labels = np.zeros((40, 30), np.uint8)
    labels[5:20, 3:12], labels[5:25, 16:27] = 1, 2
    target = tmp_path / f"mask{suffix}"

    written = write_labels(str(target), labels, {"name": "lungs"})

    assert written == [str(target)]
    back = iio.imread(target) if suffix == ".png" else tifffile.imread(target)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, labels)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temp file left behind


def test_writer_through_napari_layer_save(tmp_path: Path):
    """The manifest's writer contribution, reached the way File ▸ Save Selected Layer reaches it."""
    labels = np.zeros((33, 35), np.int32)  # napari's own labels default to wide ints
    labels[2:9, 4:20] = 2
    target = tmp_path / "lungs.png"

    Labels(labels, name="lungs").save(str(target), plugin=PLUGIN)

    back = iio.imread(target)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, labels)


def test_writer_rejects_what_a_png_cannot_hold(tmp_path: Path):
    with pytest.raises(ValueError, match="2-D"):
        write_labels(str(tmp_path / "stack.png"), np.zeros((2, 8, 8), np.uint8), {})
    with pytest.raises(ValueError, match="16-bit"):
        write_labels(str(tmp_path / "big.png"), np.full((8, 8), 70_000, np.int32), {})
    with pytest.raises(ValueError, match="non-negative"):
        write_labels(str(tmp_path / "neg.png"), np.full((8, 8), -1, np.int32), {})
    wide = np.full((8, 8), 70_000, np.int32)
    write_labels(str(tmp_path / "big.tif"), wide, {})  # TIFF keeps the dtype
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "big.tif"), wide)


@pytest.mark.gui
def test_viewer_opens_dicom_with_mm_scale(make_napari_viewer, dicom_path: Path, raw: np.ndarray, phantom_png: Path):
    viewer = make_napari_viewer()
    # napari's built-in reader also claims *.dcm, so a plain viewer.open asks the user to pick
    [layer] = viewer.open(dicom_path, plugin=PLUGIN)
    assert tuple(layer.scale) == SPACING
    assert layer.metadata["spacing_mm"] == SPACING
    np.testing.assert_allclose(layer.data, expected_pixels(raw))
    # our DICOM-only patterns must not make PNGs ambiguous (no "choose a reader" error)
    [png] = viewer.open(phantom_png)
    assert png.data.shape == (300, 260)
