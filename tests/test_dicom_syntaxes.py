"""Every transfer syntax CR/DX archives use reads, and segments like the uncompressed file.

The compressed files are written here from a CC BY X-ray shipped with the package (so the test runs
on any machine), in all seven syntaxes, and segmented with the bundled model; nothing is mocked.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from dicom_files import LOSSY, SYNTAXES, reference_xray, write_radiograph

from napari_lung_unet.images.read import ImageError, read_xray
from napari_lung_unet.nn.predict import Predictor



@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.from_registry(device="cpu")  # an empty home: the bundled default model


@pytest.fixture
def image8() -> np.ndarray:
    return reference_xray()[0]


@pytest.fixture
def reference(tmp_path: Path, image8: np.ndarray, predictor: Predictor) -> tuple[np.ndarray, np.ndarray]:
    """The uncompressed file's pixels and predicted labels."""
    xray = read_xray(write_radiograph(tmp_path / "explicit.dcm", image8, "explicit"))
    return xray.pixels, predictor.predict(xray).labels


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.mark.parametrize("syntax", sorted(SYNTAXES))
def test_every_cr_dx_syntax_segments_like_the_uncompressed_file(
    tmp_path: Path, image8: np.ndarray, reference: tuple[np.ndarray, np.ndarray], predictor: Predictor, syntax: str
) -> None:
    path = write_radiograph(tmp_path / f"{syntax}.dcm", image8, syntax)
    import pydicom

    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == SYNTAXES[syntax]
    xray = read_xray(path)
    ref_pixels, ref_labels = reference
    assert xray.pixels.shape == ref_pixels.shape
    assert xray.spacing == (0.25, 0.25)  # ImagerPixelSpacing of a projection radiograph
    labels = predictor.predict(xray).labels
    if syntax in LOSSY:
        # lossy JPEG moves grey values by a few levels; the lungs must not move
        scale = 16 if syntax == "jpeg_baseline" else 1  # baseline stores 8 of the 12 bits
        assert np.abs(xray.pixels * scale - ref_pixels).mean() < 0.01 * np.ptp(ref_pixels)
        assert dice(labels == 1, ref_labels == 1) > 0.98 and dice(labels == 2, ref_labels == 2) > 0.98
    else:
        np.testing.assert_array_equal(xray.pixels, ref_pixels)
        np.testing.assert_array_equal(labels, ref_labels)


def test_undecodable_syntax_names_it_and_what_to_install(tmp_path: Path, image8: np.ndarray) -> None:
    """A real JPEG-LS file, read in a Python where no JPEG-LS plugin can be imported."""
    path = write_radiograph(tmp_path / "jpeg_ls.dcm", image8, "jpeg_ls")
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("pylibjpeg", "libjpeg", "jpeg_ls", "_CharLS", "gdcm"):
            sys.modules[name] = None  # as if not installed: importing it raises ImportError
        from napari_lung_unet.images.read import ImageError, read_xray
        try:
            read_xray({str(path)!r})
        except ImageError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    message = out.stdout.strip()
    assert len(message.splitlines()) == 1, out.stdout + out.stderr
    assert str(path) in message
    assert "JPEG-LS Lossless" in message and "1.2.840.10008.1.2.4.80" in message
    assert "pip install pylibjpeg pylibjpeg-libjpeg" in message


def test_syntax_without_any_python_decoder_says_how_to_convert(tmp_path: Path) -> None:
    from dicom_files import radiograph_dataset
    from pydicom import uid
    from pydicom.encaps import encapsulate

    ds = radiograph_dataset(np.zeros((64, 64), np.uint16))
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = uid.MPEG2MPML  # pydicom has no decoder for MPEG-2
    ds.save_as(tmp_path / "mpeg.dcm", enforce_file_format=True)
    with pytest.raises(ImageError) as info:
        read_xray(tmp_path / "mpeg.dcm")
    message = str(info.value)
    assert "MPEG2" in message.replace("-", "") and "1.2.840.10008.1.2.4.100" in message
    assert "Explicit VR Little Endian" in message and "\n" not in message


def test_codestream_larger_than_its_header_is_refused(tmp_path: Path) -> None:
    """A JPEG whose SOF says 4000² inside a DICOM header saying 64²: the header check alone would pass it."""
    import imagecodecs
    from dicom_files import radiograph_dataset
    from pydicom import uid
    from pydicom.encaps import encapsulate

    ds = radiograph_dataset(np.zeros((64, 64), np.uint16))
    ds.PixelData = encapsulate([imagecodecs.jpeg8_encode(np.zeros((4000, 4000), np.uint16), lossless=True, bitspersample=12)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = uid.JPEGLosslessSV1
    ds.save_as(tmp_path / "liar.dcm", enforce_file_format=True)
    with pytest.raises(ImageError, match=r"compressed image is 4000×4000 but the DICOM header says 64×64"):
        read_xray(tmp_path / "liar.dcm")
