"""The one reader every entry point uses: what it accepts, and the specific reason for each rejection."""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_lung_unet.images.read import ImageError, list_images, read_xray, to_grey
from napari_lung_unet.images.phantom import make_phantom


@pytest.fixture
def grey8() -> np.ndarray:
    image, _ = make_phantom((96, 80), seed=1, dtype=np.uint8)
    return image


# -- accepted ---------------------------------------------------------------------------


def test_rgb_png_becomes_grey(tmp_path: Path, grey8: np.ndarray) -> None:
    path = tmp_path / "rgb.png"
    iio.imwrite(path, np.dstack([grey8] * 3))
    xray = read_xray(path)
    assert xray.pixels.shape == grey8.shape and xray.pixels.dtype == np.float32
    np.testing.assert_allclose(xray.pixels, grey8, atol=0.01)  # equal channels: luminance = the grey value


def test_rgba_png_becomes_grey_ignoring_alpha(tmp_path: Path, grey8: np.ndarray) -> None:
    path = tmp_path / "rgba.png"
    alpha = np.full_like(grey8, 128)
    iio.imwrite(path, np.dstack([grey8, grey8, grey8, alpha]))
    np.testing.assert_allclose(read_xray(path).pixels, grey8, atol=0.01)


def test_grey_alpha_png_becomes_grey(tmp_path: Path, grey8: np.ndarray) -> None:
    path = tmp_path / "la.png"
    iio.imwrite(path, np.dstack([grey8, np.full_like(grey8, 255)]))
    np.testing.assert_array_equal(read_xray(path).pixels, grey8)


def test_16_bit_png_keeps_full_range(tmp_path: Path) -> None:
    image, _ = make_phantom((128, 100), seed=2, dtype=np.uint16)
    assert image.max() > 255
    path = tmp_path / "x16.png"
    iio.imwrite(path, image)
    pixels = read_xray(path).pixels
    assert pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels, image.astype(np.float32))


def test_float32_tiff(tmp_path: Path) -> None:
    image = np.random.default_rng(0).normal(0.0, 1.0, (70, 90)).astype(np.float32)
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, image)
    np.testing.assert_array_equal(read_xray(path).pixels, image)


def test_jpeg(tmp_path: Path, grey8: np.ndarray) -> None:
    path = tmp_path / "x.jpg"
    iio.imwrite(path, grey8)
    assert read_xray(path).pixels.shape == grey8.shape


def test_singleton_axis_is_squeezed() -> None:
    assert to_grey(np.arange(40 * 50, dtype=np.uint16).reshape(1, 40, 50)).shape == (40, 50)


def test_list_images_expands_folders_and_skips_non_images(tmp_path: Path, grey8: np.ndarray) -> None:
    for name in ("b.png", "a.tif", "notes.txt", ".hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    explicit = tmp_path / "elsewhere.jpeg"
    assert list_images([tmp_path, explicit]) == [tmp_path / "a.tif", tmp_path / "b.png", explicit]


# -- rejected, each with its own reason -----------------------------------------------------


def _reject(path: Path, *fragments: str) -> str:
    with pytest.raises(ImageError) as info:
        read_xray(path)
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_3d_tiff_stack_names_the_axis(tmp_path: Path) -> None:
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.random.default_rng(0).random((3, 64, 64)).astype(np.float32), photometric="minisblack")
    _reject(path, "3-D stack", "axis 0 has 3 slices", "pick one slice")


def test_channel_last_stack_names_the_last_axis(tmp_path: Path) -> None:
    path = tmp_path / "channels.tif"
    tifffile.imwrite(path, np.random.default_rng(0).random((64, 72, 5)).astype(np.float32), photometric="minisblack")
    _reject(path, "axis 2 has 5 slices")


def test_too_small(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    iio.imwrite(path, (np.random.default_rng(0).random((31, 200)) * 255).astype(np.uint8))
    _reject(path, "too small", "31×200", "at least 32 px")


def test_32_px_is_enough(tmp_path: Path) -> None:
    path = tmp_path / "edge.png"
    iio.imwrite(path, (np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8))
    assert read_xray(path).pixels.shape == (32, 32)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    _reject(path, "empty (0 bytes)")


def test_all_nan_tiff(tmp_path: Path) -> None:
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, np.full((64, 64), np.nan, np.float32))
    _reject(path, "all NaN")


def test_some_nan_tiff(tmp_path: Path) -> None:
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    image[5, 7] = np.nan
    image[9, 9] = np.inf
    path = tmp_path / "somenan.tif"
    tifffile.imwrite(path, image)
    _reject(path, "contains 2 NaN/inf pixels")


def test_constant_image(tmp_path: Path) -> None:
    path = tmp_path / "flat.png"
    iio.imwrite(path, np.full((64, 64), 77, np.uint8))
    _reject(path, "constant", "77")


def test_corrupt_png(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.png"
    path.write_bytes(os.urandom(2048))
    _reject(path, "not a readable image")


def test_truncated_png(tmp_path: Path, grey8: np.ndarray) -> None:
    good = tmp_path / "good.png"
    iio.imwrite(good, grey8)
    path = tmp_path / "truncated.png"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _reject(path, "not a readable image", "truncated")


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n" * 20)
    _reject(path, "not a readable image")


def test_non_image_file(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_text("a,b\n1,2\n")
    _reject(path, "not a readable image")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    _reject(tmp_path / "nope.png", "file not found")
    _reject(tmp_path, "is a folder")


def test_non_numeric_array() -> None:
    with pytest.raises(ImageError, match="not an image"):
        to_grey(np.array([["a"] * 40] * 40))
