#!/usr/bin/env bash
# Reproduces the bundled default model (napari_lung_unet/models/default) in two stages:
#   1. 10 epochs from scratch at lr 1e-3 (ReduceLROnPlateau, best checkpoint by validation Dice);
#   2. 5 epochs at lr 1e-4 starting from stage 1's best weights.
# Both stages are resumable: re-run this script after a crash or Ctrl-C and each continues from its
# last.ckpt. Multi-GPU: replace `lung-unet train` with `torchrun --nproc_per_node=N -m training.cli_train`.
set -euo pipefail
DATA="${LUNG_UNET_DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}"
OUT="${1:-runs}"
COMMON=(--data "$DATA/montgomery" --data "$DATA/shenzhen"
        --input-size 256 --base-channels 16 --depth 4 --norm batch --upsample transpose
        --batch-size 8 --val-fraction 0.15 --early-stopping 10 --seed 0 --version default-1)
lung-unet train "${COMMON[@]}" --output "$OUT/default" --epochs 10 --lr 1e-3
lung-unet train "${COMMON[@]}" --output "$OUT/default-stage2" --epochs 5 --lr 1e-4 --init-from "$OUT/default/best"
echo "model: $OUT/default-stage2/best (copy weights.safetensors and card.json into napari_lung_unet/models/default)"
