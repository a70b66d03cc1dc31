#!/usr/bin/env bash
# Install the project into .venv and run the whole test suite under a virtual display, then run
# the GUI tests again in .venv-qt6 under PyQt6: napari is dropping PyQt5, and the plugin must survive it.
#
#   bash scripts/test.sh                  # everything, as CI runs it (.ci/run calls this)
#   bash scripts/test.sh tests/test_io.py # extra arguments go to the first pytest run
#   LUNG_UNET_SKIP_QT6=1 bash scripts/test.sh ...   # skip the PyQt6 pass while iterating
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
TORCH="torch==2.13.0"

install() {  # install VENV PIP_ARGS...: create VENV if needed, then torch, then the project
  local venv=$1
  shift
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  # torch first and pinned to the CPU build: installing the project first would let pip
  # resolve torch on its own and pull a multi-GB CUDA build
  "$venv/bin/python" -m pip install -q "$TORCH"
  "$venv/bin/python" -m pip install -q "$@"
}

with_display() {  # napari needs an X server with 24-bit colour for OpenGL; Xvfb gives one anywhere
  if command -v xvfb-run >/dev/null; then
    xvfb-run -a -s "-screen 0 1920x1080x24" "$@"
  elif [ -n "${DISPLAY:-}" ]; then
    "$@"
  else
    echo "test.sh: no display and no xvfb-run; install xvfb (see .ci/run for the full package list)" >&2
    return 1
  fi
}

echo "== installing into .venv (PyQt5)"
install .venv -e ".[test,qt,cluster]"
echo "== pytest: all tests"
with_display .venv/bin/python -m pytest -q "$@"

if [ "${LUNG_UNET_SKIP_QT6:-0}" = 1 ]; then
  exit 0
fi
echo "== installing into .venv-qt6 (PyQt6)"
install .venv-qt6 -e ".[test]" PyQt6
export QT_API=pyqt6 PYTEST_QT_API=pyqt6
.venv-qt6/bin/python -c "import qtpy, sys; sys.exit(qtpy.API_NAME != 'PyQt6' and 'qtpy did not pick PyQt6')"
echo "== pytest: GUI tests under PyQt6"
# exit 5 (no tests collected) fails too: a PyQt6 pass that ran nothing would prove nothing
with_display .venv-qt6/bin/python -m pytest -q -m gui
