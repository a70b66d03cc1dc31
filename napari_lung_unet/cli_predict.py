"""lung-unet predict: segment the lungs in chest X-ray files or folders.

Writes OUTPUT/<stem>.png, a uint8 label image at the input's size (0 background,
1 right lung, 2 left lung), with --overlay OUTPUT/<stem>_overlay.png, and with --seg
OUTPUT/<stem>.seg.dcm, a DICOM Segmentation in the source's study, for every DICOM input.
OUTPUT/results.csv gets one row per input as the run goes (status, lung areas, confidence,
model version, seconds). Bad files are reported as "FAILED <path>: <reason>" and skipped; the
exit code is 1 if any failed. Running the same command again skips the inputs already done.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from tqdm import tqdm

from .atomic import remove_leftovers
from .batch_local import run_local, start_workers
from .batch_steps import OVERLAY_SUFFIX, Failed, Job, Settings, failed_row
from .device import DEVICE_CHOICES
from .io import list_images
from .predict import Predictor
from .registry import Registry
from .results_table import RESULTS_NAME, ResultsTable, Row
from .resume import split_done
from .text import printable


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
    p.add_argument(
        "--workers", type=_positive_int, default=_default_workers(), metavar="N",
        help="processes that read, pre-process, post-process and write while the network runs here; "
        f"1 keeps everything in this process (default here: {_default_workers()}; the number of cores above 2)",
    )
    p.add_argument(
        "--overwrite", action="store_true",
        help=f"redo every input; by default inputs whose outputs an earlier run completed (checked against {RESULTS_NAME}) are skipped",
    )
    p.add_argument(
        "--scheduler", default=None, metavar="tcp://HOST:PORT",
        help="run on a Dask distributed cluster (pip install 'napari-lung-unet[cluster]'); inputs and output must be on storage every worker sees",
    )
    # SUPPRESS keeps `lung-unet --debug predict ...` working: a default here would overwrite it
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="print tracebacks for failures")
    p.set_defaults(run=run)


def _cores() -> int:
    """Cores this process may use (a container or taskset may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _default_workers() -> int:
    """Every core, except on a 2-core machine: there the network's two threads already use both
    cores, and worker processes measured 0.95x of --workers 1 on an idle machine
    (bench/batch_workers.py, docs/benchmarks.md), so the default must not be the slower one."""
    cores = _cores()
    return cores if cores > 2 else 1


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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

    with ExitStack() as stack:
        pool = None
        if not args.scheduler and args.workers > 1:
            pool = stack.enter_context(start_workers(args.workers))  # they start while the model loads
        return _run(args, jobs, output, pool, debug)


def _run(args: argparse.Namespace, jobs: list[Job], output: Path, pool: ProcessPoolExecutor | None, debug: bool) -> int:
    loaded = Registry().load(args.model)  # once, before any file is touched
    predictor = None if args.scheduler else Predictor(loaded, device=args.device)
    settings = Settings(output=output, card=loaded.card, overlay=args.overlay, seg=bool(getattr(args, "seg", False)))
    output.mkdir(parents=True, exist_ok=True)
    remove_leftovers(output)  # temp files of a run killed before its renames
    started = time.perf_counter()
    with ResultsTable(output / RESULTS_NAME) as table:
        todo, done = (jobs, []) if args.overwrite else split_done(jobs, table.rows, settings)
        where = f"cluster {args.scheduler}" if args.scheduler else f"{predictor.device}, {args.workers} worker(s)"
        print(printable(
            f"model {loaded.card.version} on {where}: {len(todo)} file(s) to do"
            + (f", {len(done)} already done" if done else "") + f" -> {output}"
        ), file=sys.stderr)
        if args.scheduler:
            from .batch_cluster import run_cluster  # lazy: distributed is the optional [cluster] extra

            outcomes = run_cluster(args.scheduler, todo, loaded, settings, args.device, args.batch_size)
        else:
            outcomes = run_local(todo, predictor, settings, args.workers, args.batch_size, pool)
        ok, failed = _record(outcomes, table, settings, len(todo), debug)
    seconds = time.perf_counter() - started
    print(printable(
        f"done {ok}, skipped {len(done)}, failed {failed} in {seconds:.1f} s "
        f"({ok / seconds if seconds > 0 else 0.0:.2f} images/s) -> {output}"
    ), file=sys.stderr)
    return 1 if failed else 0


def _record(outcomes: Iterator[tuple[Job, Row | Failed]], table: ResultsTable, settings: Settings,
            total: int, debug: bool) -> tuple[int, int]:
    """Append every outcome to results.csv as it comes, report failures and move the bar; return (ok, failed)."""
    ok = failed = 0
    with tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True, smoothing=0.1) as bar:
        for job, outcome in outcomes:
            if isinstance(outcome, Failed):
                failed += 1
                table.append(failed_row(job, outcome, settings))
                tqdm.write(printable(f"FAILED {job.path}: {outcome.reason}"), file=sys.stderr)  # one line, whatever the name holds
                if debug and outcome.trace:
                    tqdm.write(outcome.trace, file=sys.stderr)
            else:
                ok += 1
                table.append(outcome)
            bar.update(1)
    return ok, failed
