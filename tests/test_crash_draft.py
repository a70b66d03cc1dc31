"""A crash loses at most the current brush stroke: kill -9 napari after an edit, find the draft.

The viewer runs in a child process (under the same X display as the test) that paints, lets the
event loop run for the autosave debounce, paints one more stroke, and SIGKILLs itself: no Python
cleanup, no close event, exactly like a crash.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.store.worklist import EDITED, Worklist

pytestmark = pytest.mark.gui

CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    import numpy as np
    import napari
    from qtpy.QtWidgets import QApplication
    from napari_lung_unet.widget import LungUNetWidget

    folder, out = sys.argv[1], sys.argv[2]
    viewer = napari.Viewer(show=False)
    widget = LungUNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.review.auto_propose = False  # no model needed: the case opens with empty labels
    assert widget.review.open_folder(folder)
    while widget.review.case is None:   # the folder and its case are read off the GUI thread
        QApplication.processEvents()
        time.sleep(0.01)
    lungs = viewer.layers["lungs"]
    lungs.brush_size = 12
    lungs.paint((40, 40), 1)            # a finished stroke...
    lungs.paint((60, 50), 2)
    end = time.monotonic() + 2.0        # ...and the event loop runs on, as when the user pauses
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)
    np.save(out, lungs.data)
    lungs.paint((100, 90), 1)           # the stroke in progress when the crash happens
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_kill_after_edit_keeps_the_draft(tmp_path: Path):
    folder = tmp_path / "cases"
    folder.mkdir()
    iio.imwrite(folder / "only.png", make_phantom((128, 112), seed=7, dtype=np.uint8)[0])
    script, expected = tmp_path / "child.py", tmp_path / "after_first_strokes.npy"
    script.write_text(CHILD)

    proc = subprocess.run([sys.executable, str(script), str(folder), str(expected)], capture_output=True, text=True, timeout=300)

    assert proc.returncode == -9, proc.stderr[-3000:]
    before_crash = np.load(expected)
    assert before_crash.any()
    worklist = Worklist(folder)
    draft = worklist.load_draft("only", before_crash.shape)
    assert draft is not None, "no draft on disk after the crash"
    # at most the last stroke is lost: the draft holds every finished stroke
    assert np.array_equal(draft, before_crash) or np.all(draft[before_crash > 0] == before_crash[before_crash > 0])
    assert worklist.cases[0].status == EDITED
