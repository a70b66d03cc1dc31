#!/usr/bin/env bash
# A starting model that never saw one site, for the leave-one-site-out bench (bench/new_site.py):
# default-2's recipe (256² then 384², lung-fields) on the other collections, then both conventions
# (FiLM, as default-3's stage 3) on the other collections, without SITE.
#
#   bash scripts/train_site_base.sh covid_v7labs|shenzhen|montgomery
#
# Weights go to $LUNG_UNET_CACHE/site-base/SITE (default: cache/, git-ignored): bench weights, never
# shipped. Every stage is resumable (lung-unet train continues from its last.ckpt): re-run the same
# command after a crash, a Ctrl-C or the end of a session. A GPU is used when there is one
# (--device auto). For covid_v7labs, stages 1-2 are default-2 itself (trained on Montgomery and
# Shenzhen only), taken from git history when it is there, so only stage 3 trains.
# Environment: LUNG_UNET_DATA (the data folder), EPOCHS1/EPOCHS2/EPOCHS3 (default-2's 80/22 and 4).
set -euo pipefail
SITE="${1:?usage: train_site_base.sh covid_v7labs|shenzhen|montgomery}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
DATA="${LUNG_UNET_DATA:-$(cd "$HERE/.." && pwd)/shared/data}"
CACHE="${LUNG_UNET_CACHE:-$HERE/cache}"
OUT="$CACHE/site-base/$SITE"
LUNG_UNET="${LUNG_UNET:-lung-unet}"
case "$SITE" in
  covid_v7labs) FIELDS=(montgomery shenzhen); BOTH=(--data "$DATA/montgomery" --data "$DATA/shenzhen") ;;
  shenzhen) FIELDS=(montgomery); BOTH=(--data "$DATA/montgomery" --data "$DATA/covid_v7labs@whole-lung") ;;
  montgomery) FIELDS=(shenzhen); BOTH=(--data "$DATA/shenzhen" --data "$DATA/covid_v7labs@whole-lung") ;;
  *) echo "train_site_base.sh: unknown site '$SITE' (covid_v7labs, shenzhen or montgomery)" >&2; exit 2 ;;
esac
for d in "${FIELDS[@]}"; do
  [ -d "$DATA/$d" ] || { echo "train_site_base.sh: no $DATA/$d (set LUNG_UNET_DATA)" >&2; exit 2; }
done
mkdir -p "$OUT"
COMMON=(--base-channels 16 --depth 4 --norm batch --upsample transpose --batch-size 8 --val-fraction 0.15
        --seed 0 --workers 0)
STAGE2="$OUT/stage2/best"
if [ "$SITE" = covid_v7labs ] && [ ! -f "$STAGE2/weights.safetensors" ] \
   && git -C "$HERE" cat-file -e fbe5418:napari_lung_unet/models/default/weights.safetensors 2>/dev/null; then
  # default-2 is exactly stages 1-2 of this recipe without covid_v7labs: reuse it instead of 1.5 h of CPU
  mkdir -p "$STAGE2.tmp"
  git -C "$HERE" show fbe5418:napari_lung_unet/models/default/weights.safetensors > "$STAGE2.tmp/weights.safetensors"
  git -C "$HERE" show fbe5418:napari_lung_unet/models/default/card.json > "$STAGE2.tmp/card.json"
  mv "$STAGE2.tmp" "$STAGE2"
  echo "stage 1-2: default-2 from git history (fbe5418)"
fi
if [ ! -f "$STAGE2/weights.safetensors" ]; then
  DATA_FIELDS=()
  for d in "${FIELDS[@]}"; do DATA_FIELDS+=(--data "$DATA/$d"); done
  "$LUNG_UNET" train "${DATA_FIELDS[@]}" "${COMMON[@]}" --early-stopping 10 --version "site-base-$SITE-256" \
      --output "$OUT/stage1" --input-size 256 --epochs "${EPOCHS1:-80}" --lr 1e-3
  "$LUNG_UNET" train "${DATA_FIELDS[@]}" "${COMMON[@]}" --early-stopping 10 --version "site-base-$SITE-384" \
      --output "$OUT/stage2" --input-size 384 --epochs "${EPOCHS2:-22}" --lr 3e-4 --init-from "$OUT/stage1/best"
fi
"$LUNG_UNET" train "${BOTH[@]}" "${COMMON[@]}" --conventions lung-fields,whole-lung \
    --case-conventions "$HERE/training/case_conventions.csv" --conditioning film --input-size 384 \
    --early-stopping 4 --version "site-base-$SITE" --output "$OUT/stage3" --epochs "${EPOCHS3:-4}" --lr 2e-4 \
    --init-from "$STAGE2"
echo "model: $OUT/stage3/best (never saw $SITE)"
