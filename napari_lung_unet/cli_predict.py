"""lung-unet predict: segment the lungs in chest X-ray files or folders.

Writes OUTPUT/<stem>.png, a uint8 label image at the input's size (0 background,
1 right lung, 2 left lung), with --overlay OUTPUT/<stem>_overlay.png, and with --seg
OUTPUT/<stem>.seg.dcm, a DICOM Segmentation in the source's study, for every DICOM input. Bad files are
reported as "FAILED <path>: <reason>" and skipped; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .atomic import atomic_write_png
from .device import DEVICE_CHOICES
from .io import XRay, is_dicom, list_images, read_xray
from .overlay import make_overlay
from .predict import Prediction, Predictor
from .text import printable

OVERLAY_SUFFIX = "_overlay"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="segment lungs in X-ray files or folders",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="image files (PNG, TIFF, JPEG, DICOM) or folders of them, or DICOMweb study URLs <root>/studies/<uid>",
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the masks (created if missing)")
    p.add_argument(
        "--model", default=None, metavar="NAME_OR_PATH",
        help="registered version or a model folder/file (default: the current version, see `lung-unet models`)",
    )
    p.add_argument(
        "--device", default="auto", metavar="{" + ",".join(DEVICE_CHOICES) + "}",
        help="compute device; auto picks cuda, then mps, then cpu (default: auto)",
    )
    p.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png: the image with tinted lungs")
    p.add_argument(
        "--seg", action="store_true",
        help="for DICOM inputs also write <stem>.seg.dcm: a DICOM Segmentation of the lungs in the source's study",
    )
    p.add_argument(
        "--store-seg", action="store_true",
        help="DICOMweb inputs: store each SEG back into its study (STOW-RS); implies --seg",
    )
    p.add_argument("--batch-size", type=_positive_int, default=4, metavar="N", help="images per network call (default: 4)")
    # SUPPRESS keeps `lung-unet --debug predict ...` working: a default here would overwrite it
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="print tracebacks for failures")
    p.set_defaults(run=run)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


@dataclass
class Job:
    path: Path
    stem: str  # output name without extension, unique within this run


def plan_outputs(files: list[Path], output: Path, overlay: bool) -> tuple[list[Job], list[str]]:
    """Give every input a unique output stem; return the jobs and a note per renamed input.

    Inputs sharing a stem (``a.png`` and ``a.tif``, or ``x/a.png`` and ``y/a.png``) would
    otherwise overwrite each other's mask, and an output folder that holds the inputs would
    have its X-rays replaced by masks.
    """
    protected = {p.resolve() for p in files}
    taken: set[str] = set()
    jobs, notes = [], []
    for path in files:
        stem, n = path.stem, 1
        while not _free(stem, taken, protected, output, overlay):
            n += 1
            stem = f"{path.stem}-{n}"
        names = _names(stem, overlay)
        taken.update(names)
        if n > 1:
            notes.append(f"note: {path} is written as {names[0]} ({path.stem}.png is taken by another input)")
        jobs.append(Job(path, stem))
    return jobs, notes


def _names(stem: str, overlay: bool) -> list[str]:
    return [f"{stem}.png", f"{stem}{OVERLAY_SUFFIX}.png"] if overlay else [f"{stem}.png"]


def _free(stem: str, taken: set[str], protected: set[Path], output: Path, overlay: bool) -> bool:
    return all(name not in taken and (output / name).resolve() not in protected for name in _names(stem, overlay))


def run(args: argparse.Namespace) -> int:
    from .predict_dicomweb import run_studies, wants_dicomweb

    if wants_dicomweb(args):  # fetch the studies to a temporary folder, then come back here with files
        return run_studies(args, run_local=run)
    debug = bool(getattr(args, "debug", False))
    output = Path(args.output)
    files = list_images(args.inputs)
    if not files:
        raise ValueError(f"no images found in {', '.join(map(str, args.inputs))}")
    jobs, notes = plan_outputs(files, output, args.overlay)
    for note in notes:
        print(printable(note), file=sys.stderr)

    predictor = Predictor.from_registry(args.model, device=args.device)  # once, before any file is touched
    output.mkdir(parents=True, exist_ok=True)
    print(printable(f"model {predictor.version} on {predictor.device}, {len(jobs)} file(s) -> {output}"), file=sys.stderr)

    failed = 0
    bar = tqdm(total=len(jobs), unit="file", file=sys.stderr, dynamic_ncols=True)

    def fail(path: Path, exc: BaseException) -> None:
        nonlocal failed
        failed += 1
        reason = str(exc)
        if reason.startswith(f"{path}: "):  # ImageError messages already name the file
            reason = reason[len(f"{path}: "):]
        if not isinstance(exc, (ValueError, OSError)):
            reason = f"{type(exc).__name__}: {reason}"
        tqdm.write(printable(f"FAILED {path}: {reason}"), file=sys.stderr)  # one line, whatever the name holds
        if debug:
            tqdm.write("".join(traceback.format_exception(exc)), file=sys.stderr)
        bar.update(1)

    # readers decode upcoming files while the network runs; one writer compresses PNGs meanwhile
    with ThreadPoolExecutor(2, thread_name_prefix="read") as readers, ThreadPoolExecutor(1, thread_name_prefix="write") as writer:
        fed: deque[tuple[Job, np.ndarray | None]] = deque()
        writes: deque[tuple[Job, Future[None]]] = deque()

        def good_images() -> Iterator[XRay]:
            for job, xray in _prefetch(readers, jobs, window=args.batch_size + 2):
                if isinstance(xray, BaseException):
                    fail(job.path, xray)
                    continue
                # only the overlay needs the full-size pixels after the network has its input
                fed.append((job, xray.pixels if args.overlay else None))
                yield xray

        def harvest(keep: int) -> None:
            """Collect finished writes; wait for the oldest while more than ``keep`` are queued (bounds memory)."""
            while writes and (len(writes) > keep or writes[0][1].done()):
                job, future = writes.popleft()
                try:
                    future.result()
                    bar.update(1)
                except Exception as exc:  # disk full, permissions: this file failed, the batch goes on
                    fail(job.path, exc)

        for prediction in predictor.predict_batch(good_images(), batch_size=args.batch_size):
            job, image = fed.popleft()
            seg_source = job.path if args.seg and is_dicom(job.path) else None
            writes.append((job, writer.submit(_write, output, job.stem, prediction, image, seg_source, predictor.version)))
            harvest(keep=2 * args.batch_size)
        harvest(keep=0)
    bar.close()

    done = len(jobs) - failed
    print(printable(f"wrote {done} mask(s) to {output}" + (f"; {failed} file(s) FAILED" if failed else "")), file=sys.stderr)
    return 1 if failed else 0


def _prefetch(pool: ThreadPoolExecutor, jobs: list[Job], window: int) -> Iterator[tuple[Job, XRay | BaseException]]:
    """Yield ``(job, image or the exception reading it)`` in order, keeping ``window`` reads in flight."""
    pending: deque[tuple[Job, Future[XRay]]] = deque()
    upcoming = iter(jobs)
    for job in upcoming:
        pending.append((job, pool.submit(read_xray, job.path)))
        if len(pending) >= window:
            break
    while pending:
        job, future = pending.popleft()
        nxt = next(upcoming, None)
        if nxt is not None:
            pending.append((nxt, pool.submit(read_xray, nxt.path)))
        try:
            yield job, future.result()
        except Exception as exc:  # decoders raise many types for hostile files; each is this file's failure
            yield job, exc


def _write(
    output: Path, stem: str, prediction: Prediction, image: np.ndarray | None,
    seg_source: Path | None = None, model_version: str = "",
) -> None:
    """Write the mask, the overlay when ``image`` is given and the DICOM SEG of ``seg_source``;
    all or nothing, so a failure leaves no output."""
    picture = make_overlay(image, prediction.labels) if image is not None else None
    written = [atomic_write_png(output / f"{stem}.png", prediction.labels)]
    try:
        if picture is not None:
            written.append(atomic_write_png(output / f"{stem}{OVERLAY_SUFFIX}.png", picture))
        if seg_source is not None:
            from .dicom_seg import SEG_SUFFIX, write_seg_for_image  # lazy: highdicom loads only for --seg

            written.append(write_seg_for_image(seg_source, output / f"{stem}{SEG_SUFFIX}", prediction.labels, model_version))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
