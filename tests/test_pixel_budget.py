"""Every reader checks the header's pixel count before decoding (issue 12, item 2).

The hostile files are real: a 1 MB tiled-deflate TIFF and a 2 MB Deflated DICOM of 30000² pixels,
a PNG and a JPEG whose headers say 30000², each refused with one line naming it, in bounded memory.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from dicom_files import radiograph_dataset, write_deflated_bomb, write_radiograph

from napari_lung_unet.images.read import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, ImageError, max_pixels, read_xray

SIDE = 30000
GB = 1024**3


def png_bomb(path: Path, side: int = SIDE) -> Path:
    """A valid 8-bit grey PNG of side² zeros (about 1 MB), streamed row by row."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    deflater = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + pixels
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)))
        idat = bytearray()
        for _ in range(side):
            idat += deflater.compress(row)
        idat += deflater.flush()
        out.write(chunk(b"IDAT", bytes(idat)) + chunk(b"IEND", b""))
    return path


def jpeg_bomb(path: Path, side: int = SIDE) -> Path:
    """A small real JPEG whose frame header (SOF0) is rewritten to say side × side."""
    import imagecodecs

    data = bytearray(imagecodecs.jpeg8_encode(np.zeros((64, 64), np.uint8)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(data))
    return path


def tiff_bomb(path: Path, side: int = SIDE) -> Path:
    tile = np.zeros((1024, 1024), np.uint8)
    per_side = -(-side // 1024)  # ceiling division
    count = per_side * per_side
    tifffile.imwrite(path, (tile for _ in range(count)), shape=(side, side), dtype=np.uint8, tile=(1024, 1024), compression="zlib")
    return path


def peak_rss_reading(path: Path, napari_reader: bool = False) -> tuple[str, float]:
    """Read ``path`` in a fresh Python (read_xray, or the napari reader); return the error line and its peak RSS in bytes."""
    read = f"napari_get_reader({str(path)!r})({str(path)!r})" if napari_reader else f"read_xray({str(path)!r})"
    script = textwrap.dedent(
        f"""
        import json, resource
        from napari_lung_unet._reader import napari_get_reader
        from napari_lung_unet.images.read import ImageError, read_xray
        try:
            {read}
            message = "read without error"
        except ImageError as exc:
            message = str(exc)
        print(json.dumps([message, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024]))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    message, rss = json.loads(out.stdout.strip().splitlines()[-1])
    return message, float(rss)


def assert_refused(message: str, path: Path) -> None:
    assert message.startswith(f"{path}: image is "), message
    assert "over the 25.0 Mpx limit" in message and MAX_PIXELS_ENV in message and "\n" not in message


@pytest.mark.slow
@pytest.mark.parametrize("make", [tiff_bomb, lambda path: write_deflated_bomb(path, SIDE)], ids=["tiled-deflate-tiff", "deflated-dicom"])
def test_issue_12_bombs_are_refused_in_bounded_memory(tmp_path: Path, make) -> None:  # noqa: ANN001
    path = make(tmp_path / ("bomb.tif" if make is tiff_bomb else "bomb.dcm"))
    assert path.stat().st_size < 4 * 1024**2
    message, rss = peak_rss_reading(path)
    assert_refused(message, path)
    assert "30000×30000" in message
    assert rss < 2 * GB, f"peak RSS {rss / GB:.2f} GB"


@pytest.mark.slow
def test_png_bomb_is_refused(tmp_path: Path) -> None:
    path = png_bomb(tmp_path / "bomb.png")
    message, rss = peak_rss_reading(path)
    assert "over the 25.0 Mpx limit" in message and str(path) in message, message
    assert rss < 2 * GB


def test_jpeg_header_bomb_is_refused(tmp_path: Path) -> None:
    path = jpeg_bomb(tmp_path / "bomb.jpg")
    with pytest.raises(ImageError) as info:
        read_xray(path)
    assert str(path) in str(info.value) and "limit" in str(info.value)


def test_uncompressed_and_compressed_dicom_headers_are_checked_before_decoding(tmp_path: Path) -> None:
    raw = radiograph_dataset(np.zeros((64, 64), np.uint16))
    raw.Rows = raw.Columns = SIDE  # the pixel data is far too short: nothing may try to read it
    raw.save_as(tmp_path / "raw.dcm", enforce_file_format=True)
    assert_refused(_message(tmp_path / "raw.dcm"), tmp_path / "raw.dcm")

    j2k = write_radiograph(tmp_path / "j2k.dcm", np.zeros((64, 64), np.uint8) + 7, "jpeg2000")
    import pydicom

    ds = pydicom.dcmread(j2k)
    ds.Rows = ds.Columns = SIDE
    ds.save_as(j2k, enforce_file_format=True)
    assert_refused(_message(j2k), j2k)


def test_default_admits_the_largest_detector(tmp_path: Path) -> None:
    """About 4300 × 4300 at 16 bit, as a DICOM (Deflated) and a TIFF."""
    assert max_pixels() == DEFAULT_MAX_PIXELS >= 4300 * 4300
    rng = np.random.default_rng(0)
    image = rng.integers(0, 4096, (4300, 4300), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "large.tif", image, compression="zlib")
    assert read_xray(tmp_path / "large.tif").pixels.shape == (4300, 4300)

    import pydicom
    from pydicom import uid

    ds = radiograph_dataset(image)
    ds.file_meta.TransferSyntaxUID = uid.DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "large.dcm", enforce_file_format=True)
    assert pydicom.dcmread(tmp_path / "large.dcm", stop_before_pixels=True).Rows == 4300
    np.testing.assert_array_equal(read_xray(tmp_path / "large.dcm").pixels, image.astype(np.float32))


def test_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.png"
    iio.imwrite(path, (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8))
    monkeypatch.setenv(MAX_PIXELS_ENV, "4000")
    with pytest.raises(ImageError, match=r"64×64 \(0\.0 Mpx\), over the 0\.0 Mpx limit"):
        read_xray(path)
    monkeypatch.setenv(MAX_PIXELS_ENV, "4096")
    assert read_xray(path).pixels.shape == (64, 64)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ImageError, match=f"{MAX_PIXELS_ENV}='lots' is not a whole number from 1024 to"):
        read_xray(path)


def test_deflated_dicom_that_inflates_past_its_header_is_refused(tmp_path: Path) -> None:
    """A Deflated file whose header says 64² but whose stream inflates far beyond it."""
    from pydicom import uid

    path = tmp_path / "liar.dcm"

    ds = radiograph_dataset(np.zeros((64, 64), np.uint16) + np.arange(64, dtype=np.uint16))
    ds.add_new(0x7FE10010, "OB", bytes(200 * 1024**2))  # 200 MB of private zeros after the pixels
    ds.file_meta.TransferSyntaxUID = uid.DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    assert path.stat().st_size < 1024**2
    with pytest.raises(ImageError, match="inflates to more than its 64×64 header promises"):
        read_xray(path)


def _message(path: Path) -> str:
    with pytest.raises(ImageError) as info:
        read_xray(path)
    return str(info.value)


@pytest.mark.slow
def test_predict_on_a_folder_of_bombs_fails_each_by_name_in_bounded_memory(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    bombs = [tiff_bomb(folder / "bomb.tif"), write_deflated_bomb(folder / "bomb.dcm", SIDE)]
    iio.imwrite(folder / "ok.png", (np.random.default_rng(0).random((96, 96)) * 255).astype(np.uint8))
    script = textwrap.dedent(
        f"""
        import resource, sys
        from napari_lung_unet.cli import main
        code = main(["predict", {str(folder)!r}, "-o", {str(tmp_path / "out")!r}, "--model", {str(tiny_model_dir)!r}])
        print("RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, code, file=sys.stderr)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    rss_line = [line for line in out.stderr.splitlines() if line.startswith("RSS ")][-1]
    _, rss, code = rss_line.split()
    assert code == "1"
    for bomb in bombs:
        assert f"FAILED {bomb}: image is 30000×30000 (900.0 Mpx), over the 25.0 Mpx limit" in out.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok.png", "results.csv"]
    assert float(rss) < 2 * GB, f"peak RSS {float(rss) / GB:.2f} GB"
