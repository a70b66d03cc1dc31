"""A corrections store made from the bundled CC BY reference set, each case with its proposal kept (issue 33 #6).

    python bench/store_from_reference.py --output DIR [--model DIR] [--proposal-convention lung-fields] \\
        [--truth-convention whole-lung] [--limit 12]

Each reference image is accepted with its reference mask in ``--truth-convention`` (the clinician's *final*
labels, split into right/left lung where the proposal says which), and keeps ``--model``'s proposal in
``--proposal-convention`` (the *original*): the store a review of that site would leave. It feeds
``bench/correction_effort.py --store DIR``; with the
model that proposed them, ``--store`` must give the same numbers as regenerating the proposals.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from napari_lung_unet.images.conventions import check_convention
from napari_lung_unet.images.labels import LEFT_LUNG, RIGHT_LUNG
from napari_lung_unet.images.read import read_xray
from napari_lung_unet.nn.model_io import load_model
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.settings import bundled_model_dir
from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsStore, ProposalKept

REFERENCE = Path(__file__).resolve().parents[1] / "napari_lung_unet" / "reference"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", required=True, type=Path, help="the corrections store to write (cases of the same id are replaced)")
    ap.add_argument("--model", default=str(bundled_model_dir()))
    ap.add_argument("--proposal-convention", default="lung-fields")
    ap.add_argument("--truth-convention", default="whole-lung")
    ap.add_argument("--limit", type=int, default=12)
    args = ap.parse_args()
    proposing, truth_convention = check_convention(args.proposal_convention), check_convention(args.truth_convention)
    predictor = Predictor(load_model(args.model), device="cpu", convention=proposing)
    store = CorrectionsStore(args.output)
    for path in sorted((REFERENCE / "images").iterdir())[: args.limit]:
        truth = np.asarray(iio.imread(REFERENCE / truth_convention / path.name)) > 0
        proposal = predictor.predict(read_xray(path)).labels
        accepted = np.where(truth, np.where(proposal == LEFT_LUNG, LEFT_LUNG, RIGHT_LUNG), 0).astype(np.uint8)
        changed = float(((proposal > 0) != truth).mean())
        record = CorrectionRecord(path.stem, str(path), "", predictor.version, changed, convention=truth_convention)
        store.add(path, accepted, record, proposal=ProposalKept(proposal, predictor.version, proposing))
    print(f"{store.root}: {len(store)} cases, each with its {proposing} proposal by {predictor.version}")


if __name__ == "__main__":
    main()
