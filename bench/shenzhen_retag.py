"""Re-check the Shenzhen convention tags with a model that draws both conventions.

    python bench/shenzhen_retag.py [--model DIR] [--out /tmp/retag.csv]

For every Shenzhen case, the region the model's whole-lung output adds to its lung-fields output
(the lung behind the heart and under the domes) and how much of it the true mask covers: a mask
drawn behind the heart covers most of it, one drawn along the heart little. Printed: the tagged
whole-lung cases that cover less than half of it, and the lung-fields ones that cover more than
60 % of a region over 4 % of the lung, for the check by eye (their pictures hold Shenzhen pixels,
so none is written here). training/case_conventions.csv says what was changed on 2026-12-01.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from napari_lung_unet.nn.model_io import load_model
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.settings import bundled_model_dir, data_dir
from training.data import discover_pairs, read_case_conventions, read_pair

TAGS = Path(__file__).resolve().parents[1] / "training" / "case_conventions.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(bundled_model_dir()))
    ap.add_argument("--out", type=Path, default=None, help="a CSV of every case's figures")
    args = ap.parse_args()
    loaded = load_model(args.model)
    fields, whole = (Predictor(loaded, device="cpu", convention=c) for c in ("lung-fields", "whole-lung"))
    tagged = {case for (dataset, case), c in read_case_conventions(TAGS).items() if dataset == "shenzhen" and c == "whole-lung"}
    rows = []
    for pair in discover_pairs(data_dir() / "shenzhen"):  # one at a time: 425 images of up to 3000² do not fit at once
        image, mask = read_pair(pair)
        truth = mask > 0
        added = (whole.predict(image).labels > 0) & ~(fields.predict(image).labels > 0)
        covered = float((added & truth).sum() / max(int(added.sum()), 1))
        share = float(added.sum() / max(int(truth.sum()), 1))
        rows.append((pair.case_id, "whole-lung" if pair.case_id in tagged else "lung-fields", covered, share))
    if args.out:
        with args.out.open("w", newline="") as f:
            csv.writer(f).writerows([("case", "tag", "covered", "added_share"), *rows])
    print("tagged whole-lung, truth covers < 50 % of what whole-lung adds:")
    for case, tag, covered, share in sorted(rows, key=lambda r: r[2]):
        if tag == "whole-lung" and covered < 0.5:
            print(f"  {case}: {covered:.0%} of {share:.0%} of the lung")
    print("tagged lung-fields, truth covers > 60 % of an added region over 4 % of the lung:")
    for case, tag, covered, share in sorted(rows, key=lambda r: -r[2]):
        if tag == "lung-fields" and covered > 0.6 and share > 0.04:
            print(f"  {case}: {covered:.0%} of {share:.0%} of the lung")


if __name__ == "__main__":
    main()
