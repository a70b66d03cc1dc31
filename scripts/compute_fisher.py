"""Write ``fisher.safetensors`` beside a model trained before ``lung-unet train`` wrote it (default-2).

It uses the model's own training split of the datasets its card names, found under
``$LUNG_UNET_DATA``; the file holds one number per weight, no image.

    python scripts/compute_fisher.py napari_lung_unet/models/default [--images 256] [--device auto]
"""

from __future__ import annotations

import argparse
import time

from napari_lung_unet.nn.device import resolve_device
from napari_lung_unet.nn.model_io import load_model
from napari_lung_unet.settings import dataset_path
from training.data import load_arrays, split_of_run
from training.fisher import compute_fisher, save_fisher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model folder (weights.safetensors + card.json)")
    ap.add_argument("--images", type=int, default=256, help="evenly spread training images to use")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    loaded = load_model(args.model)
    card = loaded.card
    pairs = [p for name in card.training_data if not name.startswith("corrections:") for p in split_of_run(card, dataset_path(name))[0]]
    data = load_arrays(pairs, card.input_size, card.normalisation)
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    fisher = compute_fisher(loaded.model.to(device), data, device, limit=args.images)
    path = save_fisher(loaded.path, fisher, min(args.images, len(data)))
    print(f"{path}: Fisher of {card.version} on {min(args.images, len(data))} of {len(data)} training images ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
