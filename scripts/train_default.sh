#!/usr/bin/env bash
# Reproduces the bundled default model (napari_lung_unet/models/default) in two stages:
#   1. 256² from scratch: up to 80 epochs at lr 1e-3 (ReduceLROnPlateau factor 0.1, patience 5),
#      early stopping after 10 epochs without a validation Dice gain (default-2's stopped at 24);
#   2. 384² from stage 1's best weights (progressive resizing: the U-Net is fully convolutional),
#      22 epochs at lr 3e-4, same schedule (default-2 was stopped by hand at 22: a plateau at lr 3e-5, best at 18).
# Each stage keeps its best checkpoint by validation Dice, and both are resumable: re-run this
# script after a crash or Ctrl-C and each stage continues from its last.ckpt.
# Multi-GPU: replace `lung-unet train` with `torchrun --nproc_per_node=N -m napari_lung_unet.cli.train`.
set -euo pipefail
DATA="${LUNG_UNET_DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}"
OUT="${1:-runs}"
COMMON=(--data "$DATA/montgomery" --data "$DATA/shenzhen"
        --base-channels 16 --depth 4 --norm batch --upsample transpose
        --batch-size 8 --val-fraction 0.15 --early-stopping 10 --seed 0 --version default-2)
lung-unet train "${COMMON[@]}" --output "$OUT/default-256" --input-size 256 --epochs 80 --lr 1e-3
lung-unet train "${COMMON[@]}" --output "$OUT/default-384" --input-size 384 --epochs 22 --lr 3e-4 \
    --init-from "$OUT/default-256/best"
echo "model: $OUT/default-384/best  (bundle: python scripts/bundle_model.py $OUT/default-384/best --runs $OUT/default-256 $OUT/default-384)"
