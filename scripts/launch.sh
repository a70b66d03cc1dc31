#!/usr/bin/env bash
# One command from a fresh clone: install into .venv, then open napari with the Lung U-Net
# widget docked, the chest phantom loaded and one proposal running.
# Without a display it does not crash: scripts/launch.py takes a headless path instead
# (napari under xvfb-run saving a screenshot, or `lung-unet predict` writing an overlay).
#
#   bash scripts/launch.sh                 # install if needed, then launch
#   bash scripts/launch.sh --reinstall     # force the install step
#   bash scripts/launch.sh --help          # the launcher's own options
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.lung-unet-install-stamp"

REINSTALL=0
ARGS=()
for arg in "$@"; do
  if [ "$arg" = "--reinstall" ]; then REINSTALL=1; else ARGS+=("$arg"); fi
done

if [ ! -x "$VENV/bin/python" ]; then
  echo "launch: creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi

# Re-install only when the dependencies changed, so a second launch starts in seconds.
want="$(cat pyproject.toml | cksum)"
if [ "$REINSTALL" = 1 ] || [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "launch: installing torch==2.13.0, then napari-lung-unet[qt] (editable)"
  # torch first and pinned: the project's range would otherwise let pip pick a different build
  "$VENV/bin/python" -m pip install "torch==2.13.0"
  "$VENV/bin/python" -m pip install -e ".[qt]"
  echo "$want" > "$STAMP"
fi

exec "$VENV/bin/python" scripts/launch.py ${ARGS[@]+"${ARGS[@]}"}
