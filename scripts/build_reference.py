"""Build the reference set that ships with the package: CC BY chest X-rays with both conventions' masks.

    python scripts/build_reference.py [--model MODEL_DIR] [--n 32] [--out napari_lung_unet/reference]

From the shared covid_v7labs folder it takes images whose licence (the manifest's ``license``
column) is CC BY 3.0 or 4.0 (never Montgomery or Shenzhen, whose terms forbid shipping them):
first every image of the patients the default model's training left out (its validation split),
then one image per further patient, until ``--n``. Each is reduced to the model's input size and
stored with
- ``whole-lung/``: V7 Labs' own mask (CC BY 4.0), the whole-lung truth;
- ``lung-fields/``: the model's own lung-fields proposal: not a truth, the parent's behaviour
  that a fine-tune must keep in that convention;
- ``attribution.csv``: per image, its licence, DOI, URL and source file, and whether the model was
  trained on it.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from napari_lung_unet.nn.model_io import load_model  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.nn.preprocess import resize  # noqa: E402
from napari_lung_unet.settings import bundled_model_dir, data_dir  # noqa: E402
from training.data import discover_pairs, read_pair, split_of_run  # noqa: E402

SHIPPABLE = ("CC BY 3.0", "CC BY 4.0")


def choose(manifest: list[dict], val_ids: set[str], n: int) -> list[dict]:
    ok = [r for r in manifest if r["license"] in SHIPPABLE]
    chosen = [r for r in ok if r["case_id"] in val_ids]
    patients = {r["patientid"] for r in chosen}
    for r in ok:
        if len(chosen) >= n:
            break
        if r["patientid"] not in patients and r not in chosen:
            chosen.append(r)
            patients.add(r["patientid"])
    return chosen[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(bundled_model_dir()))
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--out", default=str(ROOT / "napari_lung_unet" / "reference"))
    args = ap.parse_args()
    loaded = load_model(args.model)
    predictor = Predictor(loaded, device="cpu")
    root = data_dir() / "covid_v7labs"
    with open(root / "manifest.csv", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    train, val = split_of_run(loaded.card, root)
    pairs = {p.case_id: p for p in discover_pairs(root)}
    chosen = choose(manifest, {p.case_id for p in val}, args.n)
    trained = {p.case_id for p in train} if "covid_v7labs" in loaded.card.training_data else set()
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("images", "whole-lung", "lung-fields"):
        (tmp / sub).mkdir(parents=True)
    size = (loaded.card.input_size, loaded.card.input_size)
    rows = []
    for r in chosen:
        image, mask = read_pair(pairs[r["case_id"]])
        small = resize(image, size).numpy()
        small = np.clip((small - small.min()) / max(float(np.ptp(small)), 1e-6) * 255 + 0.5, 0, 255).astype(np.uint8)
        truth = (resize(mask.astype(np.float32), size).numpy() > 0.5).astype(np.uint8) * 255
        fields = (predictor.predict(small).labels > 0).astype(np.uint8) * 255
        name = f"{r['case_id']}.png"
        iio.imwrite(tmp / "images" / name, small)
        iio.imwrite(tmp / "whole-lung" / name, truth)
        iio.imwrite(tmp / "lung-fields" / name, fields)
        rows.append({"case_id": r["case_id"], "license": r["license"], "doi": r["doi"], "url": r["url"],
                     "source_filename": r["source_filename"], "patientid": r["patientid"],
                     "mask_license": "CC BY 4.0 (V7 Labs, v7labs/covid-19-xray-dataset)",
                     f"trained_on_by_{loaded.card.version}": "yes" if r["case_id"] in trained else "no"})
    with open(tmp / "attribution.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (tmp / "model.txt").write_text(f"lung-fields masks proposed by {loaded.card.version}\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    n_val = sum(r["case_id"] in {p.case_id for p in val} for r in chosen)
    print(f"{len(rows)} images ({n_val} from patients {loaded.card.version} never trained on) -> {out}")


if __name__ == "__main__":
    main()
