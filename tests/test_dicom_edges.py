"""DICOM edge values and damaged files (issue 21, items 4, 10 and 15, and the probes that passed).

Every file is a real DICOM written by pydicom (or a real SEG by highdicom); each must read
correctly, or be refused with one line naming the file, or read with a note when only a
descriptive value (the pixel spacing, a VOI window) is unusable.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_files import radiograph_dataset, write_deflated_bomb
from test_pixel_budget import peak_rss_reading
from pydicom.dataset import Dataset

from napari_lung_unet.cli import main
from napari_lung_unet.images.read import MAX_PIXELS_ENV, ImageError, read_xray

GB = 1024**3
RAW = (np.random.default_rng(0).random((64, 64)) * 4000).astype(np.uint16) + 50


def write(path: Path, spacing: bytes | None = None, **attrs: object) -> Path:
    """A 64² DX of ``RAW``; ``spacing`` is PixelSpacing's raw bytes (even length), written as is."""
    ds = radiograph_dataset(RAW, **attrs)
    if spacing is not None:
        del ds.ImagerPixelSpacing
        ds.add_new(0x00280030, "DS", "1.25\\1.25")  # replaced byte for byte below: pydicom validates DS
        ds.save_as(path, enforce_file_format=True)
        data = path.read_bytes()
        at = data.index(b"1.25\\1.25")
        tag = struct_header(len(spacing))
        path.write_bytes(data[: at - 8] + tag + spacing + data[at + 10 :])
        return path
    ds.save_as(path, enforce_file_format=True)
    return path


def struct_header(length: int) -> bytes:
    import struct

    return struct.pack("<HH2sH", 0x0028, 0x0030, b"DS", length)


@pytest.mark.parametrize(
    "value", [b"1e200\\1e200 ", b"0\\0 ", b"-0.2\\-0.2 ", b"abc\\abc ", b"inf\\inf ", b"nan\\nan ", b"0.2 ", b"1e-9\\1e-9 "]
)
def test_a_pixel_spacing_that_is_not_a_pixel_size_is_dropped_with_a_note(value: bytes, tmp_path: Path) -> None:
    path = write(tmp_path / "x.dcm", spacing=value)
    xray = read_xray(path)
    assert xray.spacing is None
    np.testing.assert_array_equal(xray.pixels, RAW.astype(np.float32))
    [note] = xray.notes
    assert note.startswith(f"{path}: PixelSpacing ") and "areas are in pixels" in note, note


def test_a_usable_pixel_spacing_is_kept(tmp_path: Path) -> None:
    assert read_xray(write(tmp_path / "x.dcm", spacing=b"0.143\\0.15 ")).spacing == (0.143, 0.15)
    assert read_xray(write(tmp_path / "y.dcm")).notes == ()


@pytest.mark.slow
def test_predict_gives_no_area_for_a_huge_spacing(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    """Before: PixelSpacing 1e200 gave areas of inf cm² with exit 0."""
    path = write(tmp_path / "huge.dcm", spacing=b"1e200\\1e200 ")
    out = tmp_path / "out"
    assert main(["predict", str(path), "-o", str(out), "--model", str(tiny_model_dir), "--device", "cpu"]) == 0
    assert f"note: {path}: PixelSpacing" in capsys.readouterr().err
    [row] = list(csv.DictReader(open(out / "results.csv", encoding="utf-8")))
    assert row["right_lung_cm2"] == "" and row["left_lung_cm2"] == "" and row["status"] == "ok"


def _voi(kind: str) -> dict[str, object]:
    if kind == "window":
        return {"WindowCenter": 2000, "WindowWidth": 3000}
    if kind == "sigmoid":
        return {"WindowCenter": 2000, "WindowWidth": 3000, "VOILUTFunction": "SIGMOID"}
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = (np.arange(4096) * 16).astype(np.uint16).tobytes()
    item["LUTData"].VR = "OW"
    return {"VOILUTSequence": [item]}


@pytest.mark.parametrize("kind", ["none", "window", "sigmoid", "lut"])
def test_monochrome1_is_inverted_under_every_kind_of_voi(kind: str, tmp_path: Path) -> None:
    attrs = _voi(kind) if kind != "none" else {}
    xray = read_xray(write(tmp_path / "m1.dcm", PhotometricInterpretation="MONOCHROME1", **attrs))
    order = np.argsort(RAW, axis=None, kind="stable")
    out = xray.pixels.ravel()[order]
    # MONOCHROME1: a larger stored value is darker, so the read image falls as the stored value rises
    assert np.all(np.diff(out) <= 1e-3) and out[0] > out[-1]


@pytest.mark.parametrize("kind", ["width-0", "width-negative", "short-lut"])
def test_an_unusable_voi_is_skipped_with_a_note(kind: str, tmp_path: Path) -> None:
    if kind == "short-lut":
        item = Dataset()
        item.LUTDescriptor, item.LUTData = [4096, 0, 16], b"\0\0" * 10
        item["LUTData"].VR = "OW"
        attrs: dict[str, object] = {"VOILUTSequence": [item]}
    else:
        attrs = {"WindowCenter": 2000, "WindowWidth": 0 if kind == "width-0" else -5}
    path = write(tmp_path / "voi.dcm", **attrs)
    xray = read_xray(path)
    np.testing.assert_array_equal(xray.pixels, RAW.astype(np.float32))  # the stored values, as without a VOI
    [note] = xray.notes
    assert note.startswith(f"{path}: VOI ") and "ignored" in note, note


def _frames3(ds: Dataset) -> None:
    ds.NumberOfFrames = 3
    ds.PixelData = np.stack([RAW] * 3).tobytes()


def _short(ds: Dataset) -> None:
    ds.PixelData = ds.PixelData[:1000]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda ds: setattr(ds, "BitsAllocated", 7), "'Bits Allocated' value of '7' is invalid"),
        (lambda ds: setattr(ds, "BitsAllocated", 12), "'Bits Allocated' value of '12' is invalid"),
        (_short, "pixel data is less than expected (1000 vs 8192 bytes)"),
        (_frames3, "DICOM has 3 frames (axis 0); a single 2-D radiograph is needed"),
        (lambda ds: setattr(ds, "Rows", 0), "'Rows' value of '0' is invalid"),
    ],
    ids=["bits-7", "bits-12", "short-pixel-data", "3-frames", "rows-0"],
)
def test_a_damaged_dicom_is_one_line_naming_the_file(change, says: str, tmp_path: Path) -> None:  # noqa: ANN001
    ds = radiograph_dataset(RAW)
    change(ds)
    path = tmp_path / "bad.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ImageError) as info:
        read_xray(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message, message


def test_an_rgb_dicom_reads_as_its_luminance(tmp_path: Path) -> None:
    rgb = np.stack([RAW // 16, RAW // 32, RAW // 64], axis=-1).astype(np.uint8)
    ds = radiograph_dataset(RAW)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = rgb.tobytes()
    ds.save_as(tmp_path / "rgb.dcm", enforce_file_format=True)
    expected = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(read_xray(tmp_path / "rgb.dcm").pixels, expected, rtol=1e-6)


@pytest.mark.parametrize("value", ["inf", "1e400", "-5", "0", "lots", "nan", "2.5"])
def test_max_pixels_out_of_range_names_the_variable_and_its_range(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    """Before: inf and 1e400 ended in OverflowError inside 'not a readable image'."""
    path = write(tmp_path / "x.dcm")
    monkeypatch.setenv(MAX_PIXELS_ENV, value)
    expected = f"{MAX_PIXELS_ENV}={value!r} is not a whole number from 1024 to 1e+11 pixels"
    with pytest.raises(ImageError, match=expected.replace("+", r"\+")):
        read_xray(path)
    out = tmp_path / "out"
    assert main(["predict", str(path), "-o", str(out), "--device", "cpu"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {expected}; unset it for the default (25000000)"], lines
    assert not out.exists()


def seg_bomb(path: Path, side: int = 30000) -> Path:
    """A real lung SEG (highdicom) whose header is rewritten to side², Deflated: about 300 KB on disk."""
    from napari_lung_unet.dicom.seg import make_seg

    source = radiograph_dataset(np.zeros((64, 64), np.uint16))
    seg = make_seg(source, np.zeros((64, 64), np.uint8), "test")
    seg.Rows = seg.Columns = side
    frames = int(seg.NumberOfFrames)
    return write_deflated_bomb(path, side, seg, pixel_bytes=frames * side * side // 8, vr=b"OB")


@pytest.mark.slow
def test_a_seg_bomb_is_refused_by_the_napari_reader_from_its_header(tmp_path: Path) -> None:
    """Issue 21 #4: before, a 339 KB Deflated SEG opened as a 30000² labels layer at 4.2 GB."""
    path = seg_bomb(tmp_path / "bomb.seg.dcm")
    assert path.stat().st_size < 1024**2
    assert pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"]).SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    message, rss = peak_rss_reading(path, napari_reader=True)
    assert message == (
        f"{path}: image is 30000×30000 (900.0 Mpx), over the 25.0 Mpx limit; set {MAX_PIXELS_ENV} to change it"
    ), message
    assert rss < 2 * GB, f"peak RSS {rss / GB:.2f} GB"


def test_a_seg_given_to_predict_is_one_line(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    from napari_lung_unet.dicom.seg import make_seg

    source = radiograph_dataset(RAW)
    labels = np.zeros((64, 64), np.uint8)
    labels[10:50, 5:30], labels[10:50, 35:60] = 1, 2
    path = tmp_path / "lungs.seg.dcm"
    make_seg(source, labels, "test").save_as(path, enforce_file_format=True)
    out = tmp_path / "out"
    assert main(["predict", str(path), "-o", str(out), "--model", str(tiny_model_dir), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert f"FAILED {path}: is a DICOM Segmentation (a mask), not an X-ray; open it as labels" in err and "Traceback" not in err
