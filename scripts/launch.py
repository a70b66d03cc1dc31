"""Open napari with the Lung U-Net widget docked, the chest phantom loaded and one proposal started.

Run through ``bash scripts/launch.sh`` (which installs first) or directly with the project's
Python. Without a display it takes a headless path instead of crashing:

1. if ``xvfb-run`` exists: napari runs on a virtual display, waits for the proposal and saves a
   screenshot of the whole window (``lung_unet_screenshot.png`` by default), then exits;
2. otherwise: ``lung-unet predict --overlay`` on a phantom PNG writes a mask and an overlay.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PLUGIN = "napari-lung-unet"
WIDGET = "Lung U-Net"
SAMPLE = "chest_phantom"
HEADLESS_ENV = "LUNG_UNET_LAUNCH_UNDER_XVFB"  # set on the child run under xvfb-run, to avoid recursion
WINDOW_SIZE = (1400, 850)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--screenshot", type=Path, metavar="PNG",
                   help="save a window screenshot once the proposal is in, then exit (implied without a display)")
    p.add_argument("--output", type=Path, default=Path("lung_unet_demo"), metavar="DIR",
                   help="where the no-xvfb fallback writes its phantom, mask and overlay (default: lung_unet_demo)")
    p.add_argument("--image", type=Path, default=None, metavar="FILE",
                   help="open this X-ray (PNG, TIFF, JPEG or DICOM) instead of the phantom")
    p.add_argument("--phantom", action="store_true",
                   help="open the synthetic phantom even when a real sample X-ray is available")
    p.add_argument("--model", default=None, help="model version or path (default: the registry's current version)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    p.add_argument("--no-propose", action="store_true", help="do not start a proposal on the phantom")
    p.add_argument("--headless", choices=("auto", "xvfb", "cli"), default="auto",
                   help="without a display: xvfb = napari under xvfb-run, cli = lung-unet predict, "
                        "auto = xvfb when installed (default)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the proposal when saving a screenshot")
    return p.parse_args(argv)


def real_sample() -> Path | None:
    """A real radiograph from the shared data folder, when this checkout has one beside it.

    The phantom is only a stand-in: a real X-ray shows what the model actually does.
    """
    from napari_lung_unet.settings import data_dir

    images = sorted((data_dir() / "montgomery" / "images").glob("*.png"))
    return images[0] if images else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.image is None and not args.phantom:
        args.image = real_sample()
    if args.screenshot is not None or os.environ.get(HEADLESS_ENV):
        return run_napari(args, screenshot=args.screenshot or Path("lung_unet_screenshot.png"))
    if display_works():
        return run_napari(args, screenshot=None)
    print("launch: no usable display ($DISPLAY is empty or refuses connections); taking the headless path.")
    if args.headless != "cli" and shutil.which("xvfb-run"):
        code = run_under_xvfb(args)
        if code == 0:
            return 0
        print(f"launch: napari under xvfb-run failed (exit {code}); falling back to `lung-unet predict`.")
    elif args.headless != "cli":
        print("launch: xvfb-run is not installed; running `lung-unet predict` instead.")
    return run_cli_fallback(args)


# -- display detection ------------------------------------------------------------------------
def display_works() -> bool:
    """True when a Qt window can open. macOS and Windows always have a screen session."""
    if sys.platform in ("darwin", "win32"):
        return True
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    # a stale $DISPLAY (e.g. ssh without X forwarding) makes Qt abort the whole process, which
    # Python cannot catch; probe it in a throwaway child first
    probe = "from qtpy.QtWidgets import QApplication; QApplication([])"
    try:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# -- napari, on a real or virtual display ------------------------------------------------------
def run_napari(args: argparse.Namespace, screenshot: Path | None) -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_lung_unet._reader import xray_layer
    from napari_lung_unet.images.read import read_xray

    viewer = napari.Viewer(title="napari - Lung U-Net")
    viewer.window.resize(*WINDOW_SIZE)
    if args.image is None:
        viewer.open_sample(PLUGIN, SAMPLE)
    else:
        data, meta, _ = xray_layer(read_xray(args.image))  # the plugin's reader path, for any format
        viewer.add_image(data, **meta)
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget.device_combo.setCurrentText(args.device)
    if args.model:
        widget.model_combo.setEditText(args.model)
    viewer.reset_view()  # fit the whole radiograph in the canvas next to the dock
    results: list[object] = []  # each proposal's result, None when it failed
    widget.proposal_finished.connect(results.append)
    if not args.no_propose:
        widget.propose()  # runs in a background worker; the window stays responsive
    if screenshot is None:
        napari.run()
        return 0

    deadline = time.monotonic() + args.timeout
    while widget.state.running and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    viewer.reset_view()  # the canvas only has its final size once the dock is laid out
    for _ in range(20):  # let the new layer and status text paint before grabbing the window
        QApplication.processEvents()
        time.sleep(0.02)
    if widget.state.running:
        print(f"launch: the proposal did not finish within {args.timeout:.0f} s", file=sys.stderr)
        viewer.close()
        return 1
    dismiss_toasts(viewer)
    QApplication.processEvents()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(screenshot), canvas_only=False)
    print(f"launch: {widget.status_label.text()}")
    print(f"launch: saved a screenshot of napari with the widget to {screenshot.resolve()}")
    failed = not args.no_propose and (not results or results[-1] is None)  # the proposal failed (the status line says why)
    viewer.close()
    return 1 if failed else 0


def dismiss_toasts(viewer) -> None:
    """Close napari's pop-up notices (e.g. its PyQt5 deprecation warning): they would cover the canvas."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification  # napari has no public way

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def run_under_xvfb(args: argparse.Namespace) -> int:
    screenshot = args.screenshot or Path("lung_unet_screenshot.png")
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, str(Path(__file__).resolve()),
           "--screenshot", str(screenshot), "--device", args.device, "--timeout", str(args.timeout)]
    if args.model:
        cmd += ["--model", args.model]
    if args.image:
        cmd += ["--image", str(args.image)]
    if args.no_propose:
        cmd.append("--no-propose")
    print("launch: running napari under xvfb-run to save a screenshot")
    try:
        return subprocess.run(cmd, env={**os.environ, HEADLESS_ENV: "1"}, timeout=args.timeout + 300).returncode
    except subprocess.TimeoutExpired:
        return 124


# -- no display, no xvfb: the command line ----------------------------------------------------
def run_cli_fallback(args: argparse.Namespace) -> int:
    import imageio.v3 as iio

    from napari_lung_unet._sample_data import SAMPLE_SEED, SAMPLE_SHAPE
    from napari_lung_unet.images.phantom_radiograph import make_radiograph_phantom

    if args.image is not None:
        source = args.image
    else:
        source = args.output / "input" / "chest_phantom.png"  # apart from the outputs, which reuse its stem
        source.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(source, make_radiograph_phantom(SAMPLE_SHAPE, seed=SAMPLE_SEED)[0])
    cmd = [sys.executable, "-c", "import sys; from napari_lung_unet.cli import main; sys.exit(main())",
           "predict", str(source), "--output", str(args.output), "--overlay", "--device", args.device]
    if args.model:
        cmd += ["--model", args.model]
    print(f"launch: lung-unet predict {source} --output {args.output} --overlay")
    code = subprocess.run(cmd).returncode
    if code == 0:
        print(f"launch: wrote {args.output / (source.stem + '.png')} (mask) and "
              f"{args.output / (source.stem + '_overlay.png')} (overlay); the input is {source}")
    return code


if __name__ == "__main__":
    sys.exit(main())
