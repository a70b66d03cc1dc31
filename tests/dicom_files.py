"""Write real DICOM radiographs for tests: any CR/DX transfer syntax, and decompression bombs.

Encoders: pydicom itself for RLE, pyjpegls for JPEG-LS, pylibjpeg-openjpeg for JPEG 2000, and
imagecodecs (libjpeg-turbo 3) for the JPEG family, which pydicom cannot encode.
"""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate

SPACING = (0.25, 0.25)

# CC BY chest X-rays shipped with the package (napari_lung_unet/reference/attribution.csv), 384×384 8-bit,
# each with the bundled model's lung-fields mask (0/255): DICOM tests build their files from these,
# so they run on any machine, with or without the Montgomery/Shenzhen data beside the checkout
REFERENCE = Path(__file__).resolve().parents[1] / "napari_lung_unet" / "reference"
REFERENCE_CASES = ("1880e301", "19abe1f3")


def reference_xray(case: str = REFERENCE_CASES[0]) -> tuple[np.ndarray, np.ndarray]:
    """(the shipped reference X-ray ``case`` as 8-bit pixels, its lung-fields mask as bool)."""
    import imageio.v3 as iio

    return iio.imread(REFERENCE / "images" / f"{case}.png"), iio.imread(REFERENCE / "lung-fields" / f"{case}.png") > 0

# name -> transfer syntax: the seven CR/DX archives use (uncompressed counted once)
SYNTAXES = {
    "explicit": uid.ExplicitVRLittleEndian,
    "rle": uid.RLELossless,
    "jpeg_baseline": uid.JPEGBaseline8Bit,
    "jpeg_extended": uid.JPEGExtended12Bit,
    "jpeg_lossless_sv1": uid.JPEGLosslessSV1,
    "jpeg_ls": uid.JPEGLSLossless,
    "jpeg2000": uid.JPEG2000Lossless,
}
LOSSY = {"jpeg_baseline", "jpeg_extended"}


def radiograph_dataset(pixels: np.ndarray, bits: int = 12, **attrs: object) -> Dataset:
    """A DX For Presentation image of ``pixels`` (uint, ``bits`` stored), study/series/patient filled in."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = uid.DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = uid.generate_uid()
    ds.SeriesInstanceUID = uid.generate_uid()
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "P1", "Test^Patient", "19700101", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", "A1"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "DX", 1, 1
    ds.PresentationIntentType, ds.ImageType = "FOR PRESENTATION", ["ORIGINAL", "PRIMARY"]
    ds.Manufacturer = "tests"
    ds.PatientOrientation = ["R", "F"]  # a PA chest: patient's right on the image's left
    ds.ImagerPixelSpacing = list(SPACING)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.PixelData = pixels.astype(np.uint8 if bits <= 8 else np.uint16).tobytes()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def write_radiograph(path: Path, image8: np.ndarray, syntax: str = "explicit", **attrs: object) -> Path:
    """Write an 8-bit image as a 12-bit DX radiograph (8-bit for JPEG baseline) in transfer syntax ``syntax``."""
    import imagecodecs

    if syntax == "jpeg_baseline":
        pixels, bits = image8.astype(np.uint8), 8
    else:
        pixels, bits = image8.astype(np.uint16) * 16, 12  # CR/DX store 10-16 bits; 12 is the common case
    ds = radiograph_dataset(pixels, bits, **attrs)
    ts = SYNTAXES[syntax]
    if syntax in ("rle", "jpeg_ls", "jpeg2000"):
        ds.compress(ts)  # pydicom's own RLE encoder; pyjpegls; pylibjpeg-openjpeg
    elif syntax.startswith("jpeg"):
        if syntax == "jpeg_baseline":
            frame = imagecodecs.jpeg8_encode(pixels, level=95)
        elif syntax == "jpeg_extended":
            frame = imagecodecs.jpeg8_encode(pixels, level=95, bitspersample=12)
        else:
            frame = imagecodecs.jpeg8_encode(pixels, lossless=True, predictor=1, bitspersample=12)
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = ts
        if syntax in LOSSY:
            ds.LossyImageCompression = "01"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_deflated_bomb(
    path: Path, side: int = 30000, ds: Dataset | None = None, pixel_bytes: int | None = None, vr: bytes = b"OW"
) -> Path:
    """A Deflated Explicit VR Little Endian file of side² zero pixels, streamed: never in memory whole.

    ``ds`` is the header (a 16-bit DX by default; its Rows, Columns and pixel data are replaced),
    ``pixel_bytes`` the length of its zero pixel data (side² × 2 by default).
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    ds = radiograph_dataset(np.zeros((32, 32), np.uint16)) if ds is None else ds
    if "PixelData" in ds:
        del ds.PixelData
    ds.Rows = ds.Columns = side
    ds.file_meta.TransferSyntaxUID = uid.DeflatedExplicitVRLittleEndian
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    pixel_bytes = side * side * 2 if pixel_bytes is None else pixel_bytes
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(path, "wb") as out:
        out.write(b"\0" * 128 + b"DICM" + meta.getvalue())
        out.write(deflater.compress(body.getvalue() + struct.pack("<HH2sHI", 0x7FE0, 0x0010, vr, 0, pixel_bytes)))
        zeros = bytes(1 << 24)
        for start in range(0, pixel_bytes, len(zeros)):
            out.write(deflater.compress(zeros[: min(len(zeros), pixel_bytes - start)]))
        out.write(deflater.flush())
    return path


def encoded(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
