#!/usr/bin/env bash
# The learned refiner (issue 30), trained for as long as the machine gives it: start it, or resume it.
#
#   bash scripts/train_refiner.sh [extra refiner_train options]
#
# Runs training/refiner_train.py in the foreground with one thread (the CPU is shared): wrap it in
# `nohup nice -n 10 ... &` to leave it running. Its checkpoint, the best refiner so far (a model folder)
# and the prepared arrays go to $LUNG_UNET_CACHE/refiner (default: cache/, git-ignored): bench weights,
# never shipped. When $OUT/checkpoint.pt exists the run resumes from it on the same schedule (--steps
# must stay the same), so the same command continues after a crash, a kill or the end of a session.
# Environment: LUNG_UNET_DATA (the data folder), LUNG_UNET_CACHE, NAME (refiner-h), STEPS (20000).
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
DATA="${LUNG_UNET_DATA:-$(cd "$HERE/.." && pwd)/shared/data}"
CACHE="${LUNG_UNET_CACHE:-$HERE/cache}"
NAME="${NAME:-refiner-h}"
OUT="$CACHE/refiner/$NAME"
for d in montgomery shenzhen covid_v7labs; do
  [ -d "$DATA/$d" ] || { echo "train_refiner.sh: no $DATA/$d (set LUNG_UNET_DATA)" >&2; exit 2; }
done
RESUME=()
[ -f "$OUT/checkpoint.pt" ] && RESUME=(--resume)
mkdir -p "$CACHE/refiner"
cd "$HERE"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec python -m training.refiner_train --data "$DATA/montgomery" --data "$DATA/shenzhen" \
  --data "$DATA/covid_v7labs@whole-lung" --output "$OUT" --cache "$CACHE/refiner/prepared-default-3.pt" \
  --steps "${STEPS:-20000}" --version "$NAME" --eval-every 50 --checkpoint-every 25 "${RESUME[@]}" "$@"
