"""Worst GUI freeze during Propose, Next and Accept in the review loop, on real radiographs
(``--navigate``: opening a folder, Next, Previous and a case-list click on 20-Mpx X-rays).

A 20 ms QTimer "heartbeat" records when the Qt event loop gets to run; the largest gap between
two beats is the longest the clinician's window was frozen. The loop is the one a clinician runs:
open a worklist folder of real Montgomery radiographs (4020×4892, symlinked into a temporary
folder so the worklist's state never lands in the shared data), press Propose on the open case,
press Next (which reads the next case and proposes it), press Accept (which writes the case to the
corrections store in a worker and opens the next one). The bundled default model, on the CPU.

Run under a display (the window is shown, so napari paints as for a real user)::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python bench/gui_heartbeat.py
    # before/after on the same machine: an older commit's package as the baseline
    mkdir /tmp/before && git archive <commit> napari_lung_unet | tar -x -C /tmp/before
    xvfb-run -a ... .venv/bin/python bench/gui_heartbeat.py --src /tmp/before --no-record

``--navigate`` is issue 33's case: a worklist of three 4020×4892 16-bit X-rays in a 1366×768
window. Each X-ray is a Montgomery radiograph upsampled to that size with detector-like noise
(written to a temporary folder, never kept), so its PNG decodes as slowly as a real one. The
worst gap is taken per action (opening the folder, Next twice, Previous twice, a click in the case
list, opening the folder again once its layers exist), from the press until the case is shown, its
proposal is back (where one runs) and 0.5 s more have passed (napari uploads the new texture at the
next paint); ``--runs`` fresh processes, median::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python bench/gui_heartbeat.py --navigate --runs 3 --no-record

``--src`` puts that package first on ``sys.path`` (in a child process), so the same script drives
the old and the new widget through the attributes both have. ``--profile`` says where the gaps go:
a thread samples the GUI thread's stack every 5 ms while it has not beaten for over 60 ms, and the
most frequent innermost frames of our code and napari's are printed per action (a sampling
profile of the freezes only, like py-spy's, without a dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEAT_MS = 20
WAIT_S = 300.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", type=Path, help="run with this copy of napari_lung_unet first on sys.path (a baseline)")
    p.add_argument("--rounds", type=int, default=2, help="Propose/Next/Accept rounds; the worst gap of each action is kept")
    p.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    p.add_argument("--profile", action="store_true", help="print where the GUI thread was during gaps over 60 ms")
    p.add_argument("--navigate", action="store_true", help="folder, Next, Previous, case-list click on 20-Mpx X-rays")
    p.add_argument("--runs", type=int, default=1, help="fresh processes; the median worst gap per action is reported")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--images", type=Path, help="--navigate: a folder of 20-Mpx PNGs made by an earlier run (kept in /tmp)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        gaps = navigate(args.images, args.profile) if args.navigate else measure(args.rounds, args.profile)
        print(json.dumps(gaps))
        return 0
    env = dict(os.environ)
    if args.src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(args.src.resolve()), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, __file__, "--child", "--rounds", str(args.rounds)] + (["--profile"] if args.profile else [])
    if args.navigate:
        images = args.images or big_xrays(Path(tempfile.mkdtemp(prefix="lung-unet-20mpx-")))
        cmd += ["--navigate", "--images", str(images)]
    runs: list[dict[str, float]] = []
    for _ in range(args.runs):
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(REPO))
        if out.returncode != 0:
            print(out.stdout[-3000:], out.stderr[-6000:], file=sys.stderr)
            return out.returncode
        if args.profile:
            print(out.stderr[out.stderr.find("== gap profile"):])
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print("run:", {k: round(v * 1000) for k, v in runs[-1].items()}, file=sys.stderr)
    label = f"baseline {args.src}" if args.src else "this checkout"
    lines = []
    for k in runs[0]:
        each = sorted(run[k] * 1000 for run in runs)
        spread = f" (runs: {', '.join(f'{v:.0f}' for v in each)})" if len(each) > 1 else ""
        lines.append(f"- {label}: worst event-loop gap during {k}: {statistics.median(each):.0f} ms{spread}")
    print("\n".join(lines))
    if not args.no_record:
        sys.path.insert(0, str(REPO))
        from bench._report import append_markdown

        command = "xvfb-run -a .venv/bin/python bench/gui_heartbeat.py" + (" --navigate" if args.navigate else "") + (
            f" --runs {args.runs}" if args.runs > 1 else "") + (f" --src {args.src}" if args.src else "")
        title = "GUI heartbeat, 20-Mpx X-rays" if args.navigate else "GUI heartbeat in the review loop (real radiographs)"
        append_markdown(title, command, [*lines, f"- load average at the end: {os.getloadavg()[0]:.2f}"])
    return 0


BIG_SHAPE = (4892, 4020)  # rows, columns: a Montgomery original, 16-bit


def big_xrays(folder: Path, count: int = 3) -> Path:
    """``count`` 20-Mpx 16-bit PNGs: Montgomery radiographs upsampled, with detector-like noise
    (a smooth upsampled image would compress, and decode, far faster than a real one)."""
    import numpy as np
    from PIL import Image

    from napari_lung_unet.settings import data_dir

    sources = sorted((data_dir() / "montgomery" / "images").glob("*.png"))[:count]
    if len(sources) < count:
        raise SystemExit(f"need {count} Montgomery images under {data_dir()}")
    print(f"20-Mpx X-rays in {folder} (--images {folder} reuses them)", file=sys.stderr)
    rng = np.random.default_rng(0)
    for i, path in enumerate(sources):
        small = Image.open(path).convert("F")
        big = np.asarray(small.resize(BIG_SHAPE[::-1], Image.Resampling.BICUBIC), np.float32) * (4095 / 255)
        big += rng.normal(0, 12, big.shape).astype(np.float32)  # 12-bit detector noise
        pixels = np.clip(big, 0, 4095).astype(np.uint16)
        Image.fromarray(pixels).save(folder / f"xray{i}.png")
    return folder


class GapSampler:
    """Samples the GUI thread's stack while its heartbeat is late (a freeze in progress)."""

    LATE_S, EVERY_S, DEPTH = 0.060, 0.005, 6

    def __init__(self, beats: list[float]) -> None:
        import threading
        from collections import Counter

        self.beats, self.action = beats, ""
        self.samples: dict[str, Counter] = {}
        self.main = threading.main_thread().ident
        self.running = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import traceback
        from collections import Counter

        while True:
            time.sleep(self.EVERY_S)
            if not self.running or not self.beats or time.perf_counter() - self.beats[-1] < self.LATE_S:
                continue
            frame = sys._current_frames().get(self.main)
            if frame is None:
                continue
            stack = [f for f in traceback.extract_stack(frame) if "gui_heartbeat" not in f.filename]
            ours = [f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in stack if "napari_lung_unet" in f.filename]
            inner = " <- ".join(f"{Path(f.filename).name}:{f.name}" for f in reversed(stack[-self.DEPTH:]))
            key = f"{inner}  [ours: {ours[-1] if ours else '-'}]"
            self.samples.setdefault(self.action, Counter())[key] += 1

    def report(self) -> str:
        lines = ["== gap profile (samples every 5 ms while the heartbeat was over 60 ms late)"]
        for action, counter in self.samples.items():
            lines.append(f"-- {action}: {sum(counter.values()) * self.EVERY_S * 1000:.0f} ms sampled")
            lines += [f"{n * self.EVERY_S * 1000:6.0f} ms  {key}" for key, n in counter.most_common(12)]
        return "\n".join(lines)


def docked_with_heartbeat():  # noqa: ANN201 - napari and Qt load lazily
    """A 1366×768 napari with the dock on the CPU, and a heartbeat timer (not started) recording into ``beats``.
    Imported here, not at the top: ``--src`` puts another tree first on the path before any of it loads."""
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_lung_unet.widget import LungUNetWidget

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.window.resize(1366, 768)
    widget = LungUNetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Lung U-Net", area="right")
    widget.device_combo.setCurrentText("cpu")
    try:  # a user's first folder comes seconds after the dock opens (a file dialog): the warm-up is done by then
        from napari_lung_unet.widget.warm_up import warmed_up
    except ImportError:  # a baseline (--src) from before the warm-up
        warmed_up = lambda: True  # noqa: E731
    deadline = time.monotonic() + WAIT_S
    while not warmed_up() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    beats: list[float] = []
    timer = QTimer()
    timer.setInterval(BEAT_MS)
    timer.timeout.connect(lambda: beats.append(time.perf_counter()))
    return viewer, app, widget, beats, timer


def measure(rounds: int, profile: bool = False) -> dict[str, float]:
    import numpy as np

    import napari_lung_unet
    from napari_lung_unet.settings import HOME_ENV, data_dir

    print("package:", napari_lung_unet.__file__, file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="lung-unet-heartbeat-"))
    os.environ[HOME_ENV] = str(work / "home")  # a fresh corrections store and registry
    folder = work / "cases"
    folder.mkdir()
    sources = sorted((data_dir() / "montgomery" / "images").glob("*.png"))[: 1 + 2 * rounds]
    if len(sources) < 1 + 2 * rounds:
        raise SystemExit(f"need {1 + 2 * rounds} Montgomery images under {data_dir()}")
    for path in sources:
        (folder / path.name).symlink_to(path)

    viewer, app, widget, beats, timer = docked_with_heartbeat()

    def wait_until(done) -> None:
        deadline = time.monotonic() + WAIT_S
        while not done():
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for the widget")
            app.processEvents()
            time.sleep(0.005)

    sampler = GapSampler(beats) if profile else None

    def during(action, done, name: str = "") -> float:
        beats.clear()
        beats.append(time.perf_counter())
        timer.start()
        if sampler is not None:
            sampler.action, sampler.running = name, bool(name)
        action()
        wait_until(done)
        if sampler is not None:
            sampler.running = False
        timer.stop()
        beats.append(time.perf_counter())
        return float(np.max(np.diff(beats)))

    finished: list[object] = []
    accepted: list[object] = []
    widget.proposal_finished.connect(finished.append)
    widget.review.case_accepted.connect(accepted.append)

    def proposal_after(action):
        n = len(finished)
        return lambda: (action(), None)[1], lambda: len(finished) > n

    worst: dict[str, float] = {}
    act, done = proposal_after(lambda: widget.review.open_folder(folder))
    during(act, done)  # the first case creates the layers (one-time vispy set-up): not reported
    for _ in range(rounds):
        for name, press in (("Propose", widget.propose_button.click), ("Next", widget.worklist_panel.next.click)):
            wait_until(lambda: True)
            time.sleep(0.3)
            app.processEvents()
            act, done = proposal_after(press)
            worst[name] = max(worst.get(name, 0.0), during(act, done, name))
        n_acc, n_prop = len(accepted), len(finished)
        gap = during(widget.accept_button.click, lambda: len(accepted) > n_acc and len(finished) > n_prop, "Accept")
        worst["Accept"] = max(worst.get("Accept", 0.0), gap)
    viewer.close()
    if sampler is not None:
        print(sampler.report(), file=sys.stderr)
    return worst


def navigate(images: Path, profile: bool = False) -> dict[str, float]:
    """Issue 33's heartbeat: open the folder, Next, Next, Previous, Previous, a case-list click."""
    import numpy as np

    import napari_lung_unet
    from napari_lung_unet.settings import HOME_ENV

    print("package:", napari_lung_unet.__file__, file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="lung-unet-heartbeat-"))
    os.environ[HOME_ENV] = str(work / "home")
    folder = work / "cases"
    folder.mkdir()
    for path in sorted(images.glob("*.png")):
        (folder / path.name).symlink_to(path)
    viewer, app, widget, beats, timer = docked_with_heartbeat()
    sampler = GapSampler(beats) if profile else None
    opened: list[object] = []
    finished: list[object] = []
    widget.state.case_opened.connect(opened.append)
    widget.proposal_finished.connect(finished.append)

    def settle(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)

    def during(name: str, action, proposes: bool) -> float:
        n_open, n_prop = len(opened), len(finished)
        settle(0.5)
        beats.clear()
        beats.append(time.perf_counter())
        timer.start()
        if sampler is not None:
            sampler.action, sampler.running = name, True
        action()
        deadline = time.monotonic() + WAIT_S
        while not (len(opened) > n_open and (not proposes or len(finished) > n_prop)):
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out: {name}")
            app.processEvents()
            time.sleep(0.002)
        settle(0.5)  # the new texture is uploaded at the next paint; a read ahead may start
        if sampler is not None:
            sampler.running = False
        timer.stop()
        beats.append(time.perf_counter())
        return float(np.max(np.diff(beats)))

    def click_case(index: int) -> None:
        widget.worklist_panel.list.itemClicked.emit(widget.worklist_panel.list.item(index))

    worst: dict[str, float] = {}
    steps = [("opening the folder", lambda: widget.review.open_folder(folder), True),
             ("Next", widget.worklist_panel.next.click, True), ("Next", widget.worklist_panel.next.click, True),
             ("Previous", widget.worklist_panel.previous.click, False),
             ("Previous", widget.worklist_panel.previous.click, False),
             ("a case-list click", lambda: click_case(2), False),
             # the layers exist now: what opening a folder costs beyond napari's one-time layer set-up
             ("opening the folder again", lambda: widget.review.open_folder(folder), False)]
    for name, action, proposes in steps:
        worst[name] = max(worst.get(name, 0.0), during(name, action, proposes))
    viewer.close()
    if sampler is not None:
        print(sampler.report(), file=sys.stderr)
    return worst


if __name__ == "__main__":
    sys.exit(main())
