"""Full-resolution radiographs (4020×4892, ~20 Mpx) in the review loop.

Under Xvfb + Mesa, napari 0.9.2 segfaulted in ``glDrawArrays`` after setting a Labels layer's
data, clearing the layers and adding a 20-Mpx image and labels. The worklist therefore reuses
its two layers and swaps their data; this test switches between full-resolution cases (and a
small one, so the shape changes) and paints, in-process: a segfault fails the run.

It also measures brush-stroke latency at full resolution (``layer.paint`` plus the redraw),
prints it, and appends it to docs/benchmarks.md when ``LUNG_UNET_RECORD_BENCH=1``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from qtpy.QtWidgets import QApplication

from napari_lung_unet.store.corrections import CorrectionsStore
from napari_lung_unet.nn.model_io import load_model
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.settings import corrections_dir
from napari_lung_unet.widget.engine import clear_cache
from napari_lung_unet.store.worklist import EDITED, Worklist

from case_open import wait_case_open

pytestmark = [pytest.mark.gui, pytest.mark.slow]

FULL = (4020, 4892)
WAIT_MS = 300_000


def full_phantom(seed: int) -> np.ndarray:
    """A 4020×4892 phantom made at quarter size and upsampled (making it natively takes ~15 s)."""
    small, _ = make_phantom((FULL[0] // 4, FULL[1] // 4), seed=seed, dtype=np.uint8)
    return np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "fullres"
    root.mkdir()
    for i in range(2):
        iio.imwrite(root / f"full{i}.png", full_phantom(40 + i))
    iio.imwrite(root / "small.png", make_phantom((256, 224), seed=9, dtype=np.uint8)[0])
    return root


@pytest.fixture
def widget(make_napari_viewer, tiny_model_dir: Path):
    clear_cache()
    loaded = load_model(tiny_model_dir)
    Registry().add(loaded.model, loaded.card)
    Registry().set_current("tiny")
    viewer = make_napari_viewer(show=True)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-lung-unet", "Lung U-Net")
    widget.device_combo.setCurrentText("cpu")
    yield widget
    clear_cache()


def settle(qtbot, widget, ms: int = 300) -> None:
    """Wait for a proposal the step started (if any), then let napari draw: a GL crash happens here."""
    if widget.state.running:
        with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
            pass
    qtbot.wait(ms)


def stroke_latency(layer, n: int = 7) -> float:
    """Median seconds for one brush dab at full resolution, including the redraw it triggers."""
    app = QApplication.instance()
    layer.brush_size = 60
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        layer.paint((1500 + 40 * i, 1200 + 30 * i), 1)
        app.processEvents()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def test_full_resolution_switching_painting_and_accept(widget, qtbot, folder: Path):
    viewer, review = widget.viewer, widget.review
    t0 = time.perf_counter()
    with qtbot.waitSignal(widget.proposal_finished, timeout=WAIT_MS):
        assert review.open_folder(folder)
    first_case = time.perf_counter() - t0
    settle(qtbot, widget)
    lungs, xray = viewer.layers["lungs"], viewer.layers["x-ray"]
    assert lungs.data.shape == xray.data.shape == FULL

    latency = stroke_latency(lungs)
    assert review.case.status == EDITED
    assert review.stats.areas[1] == np.count_nonzero(lungs.data == 1)  # incremental readouts stay exact
    edited = lungs.data.copy()

    timings = {}
    for target in ("full1", "small", "full1", "full0"):  # full -> full -> small -> full -> back
        t0 = time.perf_counter()
        review.open_case(review.worklist.index_of(target))
        wait_case_open(qtbot, widget, target)  # read off the GUI thread, then shown
        settle(qtbot, widget, ms=0)
        timings.setdefault(target, time.perf_counter() - t0)
        settle(qtbot, widget)
        assert viewer.layers["lungs"].unique_id == lungs.unique_id  # reused, never re-added
        assert [layer.name for layer in viewer.layers] == ["x-ray", "lungs"]
    np.testing.assert_array_equal(lungs.data, edited)  # the draft came back at full resolution

    t0 = time.perf_counter()
    with qtbot.waitSignal(review.case_accepted, timeout=WAIT_MS):
        assert review.accept()
        accept_gui_s = time.perf_counter() - t0  # how long the clinician waits: validation + next case
    accept_s = time.perf_counter() - t0
    store = CorrectionsStore(corrections_dir())
    (stored,) = store.case_ids()  # named by its source: fullres-full0-<hash of the path>
    assert stored.startswith("fullres-full0-") and iio.imread(store.mask_path(stored)).shape == FULL
    assert Worklist(folder).load_draft("full0", FULL) is not None
    settle(qtbot, widget)

    lines = [
        f"- brush dab (60 px brush, `layer.paint` + redraw) on a 4020×4892 labels layer: median {latency * 1000:.0f} ms",
        f"- open the first full-resolution case (read, create layers, tiny-model proposal): {first_case:.1f} s",
        f"- switch to another full-resolution case (layers reused, proposal cached or run): {timings['full1']:.2f} s",
        f"- Accept at full resolution: {accept_gui_s:.2f} s on the GUI thread (checks, next case opens); "
        f"the store write (16-bit image PNG, mask, record) finishes in a worker after {accept_s:.1f} s",
    ]
    print("\n".join(lines))
    if os.environ.get("LUNG_UNET_RECORD_BENCH") == "1":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from bench._report import append_markdown

        append_markdown("Full-resolution review (4020×4892)", "LUNG_UNET_RECORD_BENCH=1 xvfb-run -a pytest -s tests/test_fullres.py", lines)
