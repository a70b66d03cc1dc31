#!/usr/bin/env bash
# Install the project into .venv and run the whole test suite under a virtual display, then run
# the GUI tests again under PyQt6 (installed beside PyQt5): napari is dropping PyQt5, and the plugin
# must survive it.
#
#   bash scripts/test.sh                  # everything, as CI runs it (.ci/run calls this)
#   bash scripts/test.sh tests/test_io.py # install, then only these (one pytest run, PyQt5)
#   LUNG_UNET_SKIP_QT6=1 bash scripts/test.sh   # skip the PyQt6 pass while iterating
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

echo "== installing into .venv (PyQt5, and PyQt6 beside it for the second GUI pass)"
install .venv -e ".[test,qt,cluster]" PyQt6
if [ "$#" -gt 0 ]; then
  echo "== pytest: $*"
  with_display .venv/bin/python -m pytest -q "$@"
  exit 0
fi
# The tests that need no viewer share the cores (pytest-xdist), two processes at most: several
# train, start a Dask cluster or a PACS, or hold a 2-s deadline, and a container may show more
# cores than it may use. The GUI tests run one at a time: several time the GUI thread's heartbeat,
# and a neighbour would steal its core.
echo "== pytest: all tests but the GUI ones, two processes"
with_display .venv/bin/python -m pytest -q -m "not gui" --numprocesses=auto --maxprocesses=2
echo "== pytest: GUI tests (PyQt5)"
with_display .venv/bin/python -m pytest -q -m gui

if [ "${LUNG_UNET_SKIP_QT6:-0}" = 1 ]; then
  exit 0
fi
export QT_API=pyqt6 PYTEST_QT_API=pyqt6
.venv/bin/python -c "import qtpy, sys; sys.exit(qtpy.API_NAME != 'PyQt6' and 'qtpy did not pick PyQt6')"
echo "== pytest: GUI tests under PyQt6"
# exit 5 (no tests collected) fails too: a PyQt6 pass that ran nothing would prove nothing.
# The README's screenshots are taken once, under PyQt5; the review they show runs here in test_review_loop's other tests.
# The 40 random review sequences (tests/test_review_machine.py) run once, in the PyQt5 pass: the CI budget.
with_display .venv/bin/python -m pytest -q -m gui --deselect tests/test_review_loop.py::test_take_screenshots \
  --deselect tests/test_review_machine.py::test_random_review_sequences_keep_the_invariants
