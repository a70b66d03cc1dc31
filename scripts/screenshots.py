"""Take the README screenshots of the review loop at laptop (1366×768) and desktop (1920×1080) sizes.

Each size gets a fresh napari window of exactly that size with the Lung U-Net dock, a worklist
folder opened and its first proposal in, then a screenshot of the whole window. The cases are
radiograph phantoms: the README's screenshots are committed, and the repository carries no real
X-rays (the data's terms). ``--real`` shows Montgomery radiographs from the shared data instead
(``LUNG_UNET_DATA``), symlinked into a temporary folder so the worklist's state never lands in the
data; for a look on this machine, not for committing.

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

The refine shot is a CC BY 4.0 X-ray shipped with the package (``napari_lung_unet/reference``,
attributed in its ``attribution.csv`` and the README) with the bundled model's lung-fields
proposal and one positive click inside the largest region V7 Labs' whole-lung mask has and the
proposal misses (the lung behind the heart): the click the simulated reviewer would make. The
quality-hint shot is another shipped CC BY X-ray with "Show where unsure" ticked.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from launch import dismiss_toasts  # noqa: E402 - the launcher's own screenshot does the same

SIZES = ((1366, 768), (1920, 1080))
REFINE_CASE = "41182_2020_203_Fig3_HTML"  # CC BY 4.0 (reference/attribution.csv); never a Montgomery/Shenzhen image
UNSURE_CASE = "3fd337c1"  # CC BY 3.0 (reference/attribution.csv): the bundled model doubts its left lung
WAIT_S = 300.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="folder for the PNGs (default: docs/screenshots)")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps (default: cpu)")
    p.add_argument("--real", action="store_true", help="real Montgomery radiographs from the shared data (do not commit the PNGs)")
    return p.parse_args(argv)


def case_folder(work: Path, real: bool) -> Path:
    """Three cases: radiograph phantoms, or real radiographs with ``real``."""
    import imageio.v3 as iio
    import numpy as np

    from napari_lung_unet.images.phantom_radiograph import make_radiograph_phantom
    from napari_lung_unet.settings import data_dir

    folder = work / "cases"
    folder.mkdir(parents=True)
    if real:
        sources = sorted((data_dir() / "montgomery" / "images").glob("*.png"))[:3]
        if not sources:
            raise SystemExit(f"screenshots: no Montgomery images under {data_dir()}")
        for path in sources:
            (folder / path.name).symlink_to(path)
        return folder
    for i in range(3):
        iio.imwrite(folder / f"chest_phantom_{i + 1}.png", make_radiograph_phantom((1024, 1024), seed=20 + i, dtype=np.uint8)[0])
    return folder


def wait_until(done, app) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit("screenshots: timed out waiting for the proposal")
        app.processEvents()
        time.sleep(0.01)


def settle(app, seconds: float = 1.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def window(size: tuple[int, int], device: str):  # noqa: ANN201 - napari and Qt types load lazily
    """A napari window of ``size`` with the dock, and the list each finished proposal is appended to."""
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="napari - Lung U-Net", show=True)
    viewer.window.resize(*size)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-lung-unet", "Lung U-Net")
    widget.device_combo.setCurrentText(device)
    finished: list[object] = []
    widget.proposal_finished.connect(finished.append)
    return viewer, QApplication.instance(), widget, finished


def take(viewer, app, path: Path) -> Path:  # noqa: ANN001
    viewer.reset_view()
    dismiss_toasts(viewer)
    settle(app)
    viewer.window.screenshot(str(path), canvas_only=False)
    viewer.close()
    return path


def shoot(size: tuple[int, int], folder: Path, out: Path, device: str) -> Path:
    viewer, app, _widget, finished = window(size, device)
    viewer.open(folder, plugin="napari-lung-unet")  # as a user opening (or dropping) the folder
    wait_until(lambda: finished, app)
    return take(viewer, app, out / f"review_{size[0]}x{size[1]}.png")


def deepest_missed(truth, labels) -> tuple[int, int]:
    """The interior point of the largest region the proposal misses, farthest from its edge."""
    import numpy as np
    from scipy import ndimage

    missed = truth & (labels == 0)
    pieces, n = ndimage.label(missed, structure=np.ones((3, 3)))
    largest = pieces == 1 + int(np.argmax(ndimage.sum(missed, pieces, range(1, n + 1))))
    depth = ndimage.distance_transform_edt(np.pad(largest, 1))[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(row), int(col)


REFERENCE = Path(__file__).resolve().parents[1] / "napari_lung_unet" / "reference"


def proposed_reference(case: str, device: str, size: tuple[int, int]):  # noqa: ANN201 - napari and Qt types load lazily
    """A window with one shipped CC BY reference X-ray and the bundled model's proposal in."""
    from napari_lung_unet.images.read import read_xray

    viewer, app, widget, finished = window(size, device)
    viewer.add_image(read_xray(REFERENCE / "images" / f"{case}.png").pixels, name=case, colormap="gray")
    widget.propose()
    wait_until(lambda: finished, app)
    return viewer, app, widget


def shoot_refine(out: Path, device: str, size: tuple[int, int] = (1366, 768)) -> Path:
    import imageio.v3 as iio
    import numpy as np

    viewer, app, widget = proposed_reference(REFINE_CASE, device, size)
    truth = iio.imread(REFERENCE / "whole-lung" / f"{REFINE_CASE}.png") > 0
    refined: list[object] = []
    widget.review.refine.refined.connect(refined.append)
    widget.controls.refine.click()  # Refine mode, as Shift-F
    widget.review.refine.click(*deepest_missed(truth, np.asarray(widget.lungs_layer().data)), positive=True)
    wait_until(lambda: refined, app)
    return take(viewer, app, out / f"refine_{size[0]}x{size[1]}.png")


def shoot_unsure(out: Path, device: str, size: tuple[int, int] = (1366, 768)) -> Path:
    """The dock's quality hint on a CC BY X-ray the bundled model doubts: the model line and "Show where unsure"."""
    viewer, app, widget = proposed_reference(UNSURE_CASE, device, size)
    widget.unsure.toggle.setChecked(True)
    widget.scroll.ensureWidgetVisible(widget.unsure.toggle)  # the model line and the box, on a laptop's height
    return take(viewer, app, out / f"unsure_{size[0]}x{size[1]}.png")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from napari_lung_unet.settings import HOME_ENV

    work = Path(tempfile.mkdtemp(prefix="lung-unet-shots-"))
    os.environ[HOME_ENV] = str(work / "home")  # the bundled model, an empty store: no user state shows
    args.out.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        folder = case_folder(work / f"{size[0]}x{size[1]}", args.real)  # a fresh worklist each: its first proposal is shown
        print(f"screenshots: wrote {shoot(size, folder, args.out, args.device)}")
    print(f"screenshots: wrote {shoot_refine(args.out, args.device)}")
    print(f"screenshots: wrote {shoot_unsure(args.out, args.device)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
