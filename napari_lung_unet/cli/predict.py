"""lung-unet predict: segment the lungs in chest X-ray files or folders.

Writes OUTPUT/<stem>.png, a uint8 label image at the input's size (0 background,
1 right lung, 2 left lung), with --overlay OUTPUT/<stem>_overlay.png, and with --seg
OUTPUT/<stem>.seg.dcm, a DICOM Segmentation in the source's study, for every DICOM input.
OUTPUT/results.csv gets one row per input as the run goes (status, lung areas, expected_dice,
model version, lung convention, seconds). expected_dice is the Dice the mask expects against a
clinician's (calibrated on the model's validation split); rows under --flag-below are marked
uncertain and counted at the end; --report DIR writes an offline HTML page of them. --convention whole-lung draws the lung behind the heart
and the domes too, with a model that knows it; each SEG segment's description says which was drawn.
Bad files are reported as "FAILED <path>: <reason>" and skipped; the exit code is 1 if any failed.
Running the same command again skips the inputs already done (in the same model and convention).
"""

from __future__ import annotations

import argparse

from ..batch.pipeline import run
from ..batch.results import RESULTS_NAME
from ..batch.threads import default_workers
from ..nn.device import DEVICE_CHOICES
from ..nn.quality_card import FLAG_BELOW

from .convention_option import add_convention
from .numbers import POSITIVE_INT, ranged


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="segment lungs in X-ray files or folders",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="image files (PNG, TIFF, JPEG, DICOM) or folders of them, or DICOMweb study URLs <root>/studies/<uid>",
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the masks (created if missing)")
    p.add_argument(
        "--model", default=None, metavar="NAME_OR_PATH",
        help="registered version or a model folder/file (default: the current version, see `lung-unet models`)",
    )
    p.add_argument(
        "--device", default="auto", metavar="{" + ",".join(DEVICE_CHOICES) + "}",
        help="compute device; auto picks cuda, then mps, then cpu (default: auto)",
    )
    add_convention(p, "the lung convention to draw (default: the model's own, lung-fields when it knows it)")
    p.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png: the image with tinted lungs")
    p.add_argument(
        "--seg", action="store_true",
        help="for DICOM inputs also write <stem>.seg.dcm: a DICOM Segmentation of the lungs in the source's study",
    )
    p.add_argument(
        "--store-seg", action="store_true",
        help="DICOMweb inputs: store each SEG back into its study (STOW-RS); implies --seg",
    )
    p.add_argument(
        "--flag-below", type=ranged(float, 0, 1, low_open=True, high_open=True), default=None, metavar="D",
        help="mark rows whose expected Dice is below D as uncertain and count them (default: the model card's "
        f"measured threshold, {FLAG_BELOW:g} for the bundled model)",
    )
    p.add_argument(
        "--report", default=None, metavar="DIR",
        help="write DIR/index.html: the flagged masks as thumbnails, a histogram of expected Dice and the table (offline)",
    )
    p.add_argument("--batch-size", type=POSITIVE_INT, default=4, metavar="N", help="images per network call (default: 4)")
    p.add_argument(
        "--workers", type=POSITIVE_INT, default=default_workers(), metavar="N",
        help="processes that each read, segment and write their own batches (on a GPU the network runs here); "
        f"1 keeps everything in this process (default here: {default_workers()}; one per core above 2 cores)",
    )
    p.add_argument(
        "--overwrite", action="store_true",
        help=f"redo every input; by default inputs whose outputs an earlier run completed (checked against {RESULTS_NAME}) are skipped",
    )
    p.add_argument(
        "--scheduler", default=None, metavar="tcp://HOST:PORT",
        help="run on a Dask distributed cluster (pip install 'napari-lung-unet[cluster]'); inputs and output must be on storage every worker sees",
    )
    # SUPPRESS keeps `lung-unet --debug predict ...` working: a default here would overwrite it
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="print tracebacks for failures")
    p.set_defaults(run=run)
