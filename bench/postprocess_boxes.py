"""Post-processing per 512² X-ray: the whole-image steps against the bounding-box steps (issue 14).

The network's real probabilities for ``--images`` Montgomery X-rays (default model, 384²) are
computed once; then, per image, the median time of

- the nearest-lung distance transform on the whole 384² map (``_nearest_lung(labels)``) and on the
  lungs' box grown by 2 px (``_nearest_lung(labels, margin=2)``);
- hole filling of each kept lung on the whole map and on its padded box;
- the whole ``labels_from_probability`` to 512², as it runs now,

and a check that the box steps give byte-identical results.

    python bench/postprocess_boxes.py [--images 8] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import median_time, publish  # noqa: E402

from napari_lung_unet import postprocess as pp  # noqa: E402
from napari_lung_unet.images.read import read_xray  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.settings import data_dir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()

    predictor = Predictor.from_registry(None, device="cpu")
    files = sorted((data_dir() / "montgomery" / "images").glob("*.png"))[: args.images]
    probs = predictor.network(torch.stack([predictor.prepare(read_xray(f))[0] for f in files]))
    threshold = predictor.card.threshold
    load = os.getloadavg()[0]

    times: dict[str, list[float]] = {k: [] for k in ("edt_whole", "edt_box", "fill_whole", "fill_box", "total")}
    for prob in probs:
        small = pp.clean_mask(prob > threshold)
        cleaned = np.where(small > 0, 1.0, 0.0).astype(np.float32)
        whole = pp._upsample_labels(cleaned, pp._nearest_lung(small), small, (512, 512), threshold)
        boxed = pp._upsample_labels(cleaned, pp._nearest_lung(small, margin=2), small, (512, 512), threshold)
        assert np.array_equal(whole[0], boxed[0]) and whole[1] == boxed[1]
        labelled, _ = ndimage.label(prob > threshold)
        sizes = np.bincount(labelled.ravel())[1:]
        keep = [int(i) + 1 for i in np.argsort(sizes)[::-1][:2]]
        boxes = ndimage.find_objects(labelled)
        for k in keep:
            assert np.array_equal(pp._fill_holes_in_box(labelled, k, boxes[k - 1]), pp._fill_holes(labelled == k))
        times["edt_whole"].append(median_time(lambda: pp._nearest_lung(small), args.runs))
        times["edt_box"].append(median_time(lambda: pp._nearest_lung(small, margin=2), args.runs))
        times["fill_whole"].append(median_time(lambda: [pp._fill_holes(labelled == k) for k in keep], args.runs))
        times["fill_box"].append(median_time(lambda: [pp._fill_holes_in_box(labelled, k, boxes[k - 1]) for k in keep], args.runs))
        times["total"].append(median_time(lambda: pp.labels_from_probability(prob, (512, 512), threshold), args.runs))

    def ms(key: str) -> str:
        return f"{1000 * float(np.median(times[key])):.2f}"

    lines = [
        f"{len(files)} Montgomery X-rays (512²), the default model's 384² probabilities; median over images of the "
        f"median of {args.runs} runs. Load average {load:.1f} on {os.cpu_count()} cores (other jobs shared the machine).",
        "",
        "| step | whole image (ms) | bounding box (ms) |",
        "|---|---|---|",
        f"| nearest-lung distance transform (with indices) | {ms('edt_whole')} | {ms('edt_box')} |",
        f"| hole filling of the kept lungs | {ms('fill_whole')} | {ms('fill_box')} |",
        f"| labels_from_probability to 512², as it runs now | — | {ms('total')} |",
        "",
        "Results byte-identical (checked here per image, and in tests/test_postprocess_boxes.py).",
    ]
    publish("Post-processing on bounding boxes (bench/postprocess_boxes.py)", lines, record=not args.no_record)


if __name__ == "__main__":
    main()
