#!/usr/bin/env bash
# Reproduces the bundled default model (napari_lung_unet/models/default), default-3, in three stages:
#   1. 256² from scratch: up to 80 epochs at lr 1e-3 (ReduceLROnPlateau factor 0.1, patience 5),
#      early stopping after 10 epochs without a validation Dice gain (default-2's stopped at 24);
#   2. 384² from stage 1's best weights (progressive resizing: the U-Net is fully convolutional),
#      22 epochs at lr 3e-4, same schedule (default-2 was stopped by hand at 22: a plateau at lr 3e-5, best at 18).
#   3. both lung conventions (lung-fields, whole-lung) with FiLM conditioning, from stage 2's best
#      weights (every convention starts as default-2), on Montgomery + Shenzhen (37 whole-lung cases
#      tagged in training/case_conventions.csv) + covid_v7labs (whole-lung): 5 epochs at lr 2e-4
#      (default-3's run was stopped by hand after 6, its best at 5);
#   4. default-3: 2 epochs at lr 5e-5 from stage 3's best.
# Each stage keeps its best checkpoint by validation Dice, and each is resumable: re-run this
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
HERE="$(cd "$(dirname "$0")/.." && pwd)"
BOTH=(--data "$DATA/montgomery" --data "$DATA/shenzhen" --data "$DATA/covid_v7labs@whole-lung"
      --conventions lung-fields,whole-lung --case-conventions "$HERE/training/case_conventions.csv" --conditioning film
      --base-channels 16 --depth 4 --norm batch --upsample transpose --batch-size 8 --val-fraction 0.15 --seed 0
      --input-size 384 --early-stopping 4 --version default-3)
lung-unet train "${BOTH[@]}" --output "$OUT/default-3a" --epochs 5 --lr 2e-4 --init-from "$OUT/default-384/best"
lung-unet train "${BOTH[@]}" --output "$OUT/default-3" --epochs 2 --lr 5e-5 --init-from "$OUT/default-3a/best"
echo "model: $OUT/default-3/best  (bundle: python scripts/bundle_model.py $OUT/default-3/best --runs $OUT/default-3a $OUT/default-3)"
