"""``lung-unet export``: copy the corrections store out as a flat ``images/`` + ``masks/`` dataset.

The result is the layout ``lung-unet train`` and most segmentation tools read; records stay
behind unless ``--records`` is given. ``--proposals`` also writes the model's proposal each accepted
case started from (labels 0/1/2, as ``masks/``) into ``proposals/``, for the cases whose accept kept
one. Files are copied atomically, so an interrupted export never leaves a truncated image, and
re-running it overwrites the same names.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..settings import corrections_dir
from ..store.atomic import atomic_write
from ..store.corrections import IMAGES, MASKS, PROPOSALS, RECORDS, SEG_SUFFIX, SEGS, CorrectionsStore
from ..text import printable


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the corrections store as images/ + masks/", description=__doc__)
    p.add_argument("--corrections", metavar="DIR", help="corrections store (default: the widget's store)")
    p.add_argument("--output", "-o", metavar="DIR", required=True, help="folder to write images/ and masks/ into")
    p.add_argument("--records", action="store_true", help="also copy the JSON provenance records into records/")
    p.add_argument("--proposals", action="store_true",
                   help="also write the model's proposal of each case (where the store kept one) into proposals/")
    p.set_defaults(run=run)


def export_store(store_dir: str | Path, output: str | Path, records: bool = False, proposals: bool = False) -> list[str]:
    """Copy every accepted case (and, with ``proposals``, the proposal it started from); returns the case ids written."""
    store = CorrectionsStore(store_dir)
    if not store.root.is_dir():
        raise ValueError(f"corrections store not found: {store.root}")
    out = Path(output)
    if out.resolve() == store.root.resolve():
        raise ValueError("--output must differ from the corrections store")
    ids = store.case_ids()
    if not ids:
        raise ValueError(f"{store.root}: no accepted corrections to export")
    # every case checked against its record before anything is written: a garbled or
    # inconsistent case stops the export by name, and no garbage is copied
    cases = [store.case(case_id) for case_id in ids]
    for case in cases:
        # the image keeps its stored kind (.png, .tif, or a DICOM case's .dcm): training/data.py reads all three
        image_name = f"{case.case_id}{case.image.suffix}"
        copies = [(case.image, out / IMAGES / image_name), (case.mask, out / MASKS / f"{case.case_id}.png")]
        if case.seg is not None:  # a DICOM case's SEG, for PACS viewers
            copies.append((case.seg, out / SEGS / f"{case.case_id}{SEG_SUFFIX}"))
        if proposals and case.proposal is not None:  # same name as its mask: the pair MONAI Label calls original/final
            copies.append((case.proposal, out / PROPOSALS / f"{case.case_id}.png"))
        if records:
            copies.append((store.record_path(case.case_id), out / RECORDS / f"{case.case_id}.json"))
        for source, target in copies:
            atomic_write(target, lambda tmp, src=source: shutil.copyfile(src, tmp))
    return ids


def run(args: argparse.Namespace) -> int:
    store = args.corrections or corrections_dir()
    ids = export_store(store, args.output, args.records, args.proposals)
    folders = "images/, masks/"
    if args.proposals:
        kept = sum(1 for case_id in ids if CorrectionsStore(store).record(case_id).proposal_file)
        folders += f", proposals/ for {kept} of them"
    print(printable(f"exported {len(ids)} cases from {store} to {args.output} ({folders})"))
    return 0
