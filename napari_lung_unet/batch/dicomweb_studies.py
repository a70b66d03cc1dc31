"""``lung-unet predict <root>/studies/<uid> --output DIR [--seg] [--store-seg]``: segment a PACS study.

Every study is fetched into a temporary folder first, so an unreachable server, a 401, a missing
study or one without images stops the run before any output exists. The images are then
segmented by the local pipeline (they are named ``<SOPInstanceUID>.dcm``, hence
``DIR/<SOPInstanceUID>.png``), and with ``--store-seg`` their SEGs go back into the study.
The temporary folder goes on exit, Ctrl-C and SIGTERM; one a SIGKILL left is removed by the next run
(:mod:`.temp_folder`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..dicom.web import StudyUrl, fetch_study, is_study_url, parse_study_url, store
from .temp_folder import owned_temp_folder

DOWNLOAD_PREFIX = "lung-unet-dicomweb-"


def wants_dicomweb(args: argparse.Namespace) -> bool:
    return any(is_study_url(item) for item in args.inputs) or bool(getattr(args, "store_seg", False))


def run_studies(args: argparse.Namespace, run_local: Callable[[argparse.Namespace], int]) -> int:
    """Fetch, segment with ``run_local`` (the local predict), and store SEGs back when asked."""
    from ..dicom.seg import SEG_SUFFIX

    if not any(is_study_url(item) for item in args.inputs):
        raise ValueError("--store-seg needs DICOMweb study URLs (<root>/studies/<uid>) as inputs")
    if not all(is_study_url(item) for item in args.inputs):
        raise ValueError("DICOMweb study URLs cannot be mixed with local files; run them separately")
    studies = [parse_study_url(item) for item in args.inputs]
    with owned_temp_folder(DOWNLOAD_PREFIX) as tmp:
        fetched: dict[StudyUrl, list[Path]] = {}
        for number, study in enumerate(studies):
            folder = tmp / str(number)
            folder.mkdir()
            fetched[study], notes = fetch_study(study, folder)
            for note in notes:
                print(note, file=sys.stderr)
        local = argparse.Namespace(**vars(args))
        local.inputs = [str(path) for paths in fetched.values() for path in paths]
        local.seg = bool(args.seg or args.store_seg)  # --store-seg needs the SEGs written first
        local.store_seg = False  # storing happens here, once every image is done
        started = time.time()
        code = run_local(local)
    if args.store_seg:
        output = Path(args.output)
        for study, paths in fetched.items():
            segs = [output / f"{path.stem}{SEG_SUFFIX}" for path in paths]
            # an image that failed has no SEG of this run (an older one may lie there: never store that)
            segs = [seg for seg in segs if seg.is_file() and seg.stat().st_mtime >= started - 1]
            if segs:
                store(study, segs)
                print(f"stored {len(segs)} SEG(s) into {study}", file=sys.stderr)
    return code
