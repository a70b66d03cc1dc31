#!/usr/bin/env bash
# Reproduces the bundled default model (napari_lung_unet/models/default).
# Resumable: re-run the same command after a crash or Ctrl-C and it continues from runs/default/last.ckpt.
# Multi-GPU: replace `lung-unet train` with `torchrun --nproc_per_node=N -m training.cli_train`.
set -euo pipefail
DATA="${LUNG_UNET_DATA:-$(dirname "$0")/../../shared/data}"
lung-unet train \
  --data "$DATA/montgomery" --data "$DATA/shenzhen" \
  --output "${1:-runs/default}" \
  --input-size 256 --base-channels 16 --depth 4 --norm batch --upsample transpose \
  --epochs 30 --batch-size 8 --lr 1e-3 --val-fraction 0.15 --early-stopping 10 --seed 0 \
  --version default-1
