"""The ``lung-unet predict`` pipeline behind the command line's arguments: plan, resume, run, record.

:func:`run` takes the parsed arguments (:mod:`napari_lung_unet.cli.predict` only parses them):
it lists the inputs, gives each a unique output name (:func:`plan_outputs`), skips what an earlier
run finished, runs the rest locally (:mod:`.local`) or on a Dask cluster (:mod:`.cluster`), and
appends a row per input to ``results.csv`` as the outcomes come.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from tqdm import tqdm

NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems

from ..images.read import is_dicom, list_images
from ..nn.card import ModelCard
from ..nn.quality_card import FLAG_BELOW
from ..nn.model_io import load_card
from ..nn.predict import Predictor
from ..nn.registry import Registry
from ..store.atomic import remove_leftovers
from ..text import printable
from .guard import check_output_outside_inputs, output_lock, sigterm_unwinds
from .local import run_local, start_workers
from .results import RESULTS_NAME, ResultsTable, Row
from .resume import split_done
from .steps import OVERLAY_SUFFIX, Failed, Job, Settings, failed_row
from .worker_pool import Workers
from .threads import capped_workers, plan


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
        base = _fitting_stem(path.stem)
        stem, n = base, 1
        while not _free(stem, taken, protected, output, overlay):
            n += 1
            stem = f"{_fitting_stem(base, reserve=len(f'-{n}'))}-{n}"
        names = _names(stem, overlay)
        taken.update(names)
        if n > 1:
            notes.append(f"note: {path} is written as {names[0]} ({base}.png is taken by another input)")
        elif base != path.stem:
            notes.append(f"note: {path} is written as {names[0]} (its own name is too long for the outputs' suffixes)")
        jobs.append(Job(path, stem))
    return jobs, notes


def _fitting_stem(stem: str, reserve: int = 0) -> str:
    """``stem``, or when its outputs' names would pass the 255-byte limit, its start and a hash of all of it."""
    raw = os.fsencode(stem)
    room = NAME_MAX - len(f"{OVERLAY_SUFFIX}.png") - reserve  # the longest suffix, and a rename's "-N"
    if len(raw) <= room:
        return stem
    return os.fsdecode(raw[: room - 13]) + "-" + hashlib.sha256(raw).hexdigest()[:12]


def _names(stem: str, overlay: bool) -> list[str]:
    return [f"{stem}.png", f"{stem}{OVERLAY_SUFFIX}.png"] if overlay else [f"{stem}.png"]


def _free(stem: str, taken: set[str], protected: set[Path], output: Path, overlay: bool) -> bool:
    return all(name not in taken and (output / name).resolve() not in protected for name in _names(stem, overlay))


def run(args: argparse.Namespace) -> int:
    from .dicomweb_studies import run_studies, wants_dicomweb

    if wants_dicomweb(args):  # fetch the studies to a temporary folder, then come back here with files
        convention_for(load_card(Registry().resolve(args.model))[0], args)  # before a study is downloaded, not after
        return run_studies(args, run_local=run)
    debug = bool(getattr(args, "debug", False))
    output = Path(args.output)
    missing = [item for item in args.inputs if not os.path.lexists(item)]
    if missing:  # before the model loads and before anything is written, as evaluate does
        raise ValueError(f"input not found: {', '.join(map(str, missing))}")
    check_output_outside_inputs(output, args.inputs)
    files = list_images(args.inputs)
    if not files:
        raise ValueError(f"no images found in {', '.join(map(str, args.inputs))}")
    jobs, notes = plan_outputs(files, output, args.overlay)
    if not args.scheduler and args.workers > 1:
        args.workers, capped = capped_workers(args.workers)
        notes += [capped] if capped else []
    for note in notes:
        print(printable(note), file=sys.stderr)

    with ExitStack() as stack:
        stack.enter_context(sigterm_unwinds())  # SIGTERM unwinds through start_workers, which kills the workers
        pool = None
        if not args.scheduler and args.workers > 1:
            pool = stack.enter_context(start_workers(args.workers))  # they start while the model loads
        return _run(args, jobs, output, pool, debug)


def convention_for(card: ModelCard, args: argparse.Namespace) -> str:
    """The convention to draw: ``--convention``, or the card's default. A model that does not know
    the one asked for refuses it by name (its card is enough), before anything is read or written."""
    convention = getattr(args, "convention", None) or card.default_convention
    card.output_for(convention)
    return convention


def _run(args: argparse.Namespace, jobs: list[Job], output: Path, pool: Workers | None, debug: bool) -> int:
    loaded = Registry().load(args.model)  # once, before any file is touched
    convention = convention_for(loaded.card, args)
    if getattr(args, "seg", False):  # once the run is sure to go ahead
        dicom = sum(is_dicom(job.path) for job in jobs)
        if dicom < len(jobs):
            print(f"note: --seg writes a SEG only for DICOM inputs: {dicom} of the {len(jobs)} input(s) here are DICOM", file=sys.stderr)
    predictor = None if args.scheduler else Predictor(loaded, device=args.device, convention=convention)
    settings = Settings(output=output, card=loaded.card, overlay=args.overlay, seg=bool(getattr(args, "seg", False)),
                        convention=convention, flag_below=flag_below_for(loaded.card, args))
    output.mkdir(parents=True, exist_ok=True)
    with output_lock(output), ResultsTable(output / RESULTS_NAME) as table:
        remove_leftovers(output)  # temp files of a run killed before its renames (no other run writes here)
        for note in table.notes:
            print(printable(f"note: {note}"), file=sys.stderr)
        started = time.perf_counter()
        todo, done = (jobs, []) if args.overwrite else split_done(jobs, table.rows, settings)
        where = f"cluster {args.scheduler}" if args.scheduler else f"{predictor.device}, {args.workers} worker(s)"
        print(printable(
            f"model {loaded.card.version} ({convention}) on {where}: {len(todo)} file(s) to do"
            + (f", {len(done)} already done" if done else "") + f" -> {output}"
        ), file=sys.stderr)
        if args.scheduler:
            from .cluster import run_cluster  # lazy: distributed is the optional [cluster] extra

            outcomes = run_cluster(args.scheduler, todo, loaded, settings, args.device, args.batch_size)
        else:
            budget = plan(args.workers, predictor.device)
            outcomes = run_local(todo, predictor, loaded.path, settings, budget, args.batch_size, pool)
        ok, failed = _record(outcomes, table, settings, len(todo), debug)
        remove_leftovers(output)  # a worker that died, or that its broken pool ended, may have left a temp file
        seconds = time.perf_counter() - started
    print(printable(
        f"done {ok}, skipped {len(done)}, failed {failed} in {seconds:.1f} s "
        f"({ok / seconds if seconds > 0 else 0.0:.2f} images/s) -> {output}"
    ), file=sys.stderr)
    _report_flags(table.rows, settings.flag_below, getattr(args, "report", None), loaded.card.version)
    return 1 if failed else 0


def flag_below_for(card: ModelCard, args: argparse.Namespace) -> float:
    """``--flag-below``, else the threshold measured with the card's calibration, else the measured default."""
    given = getattr(args, "flag_below", None)
    return given if given is not None else (card.quality.flag_below if card.quality else FLAG_BELOW)


def _report_flags(rows: dict[str, dict[str, str]], below: float, report: str | None, version: str) -> None:
    """Say how many masks (this run's and earlier runs' in the table) are flagged, and write the report page."""
    from .report import flagged_rows, write_report

    n_ok = sum(1 for r in rows.values() if r.get("status") == "ok")
    flagged = flagged_rows(rows.values(), below)
    print(printable(f"flagged {len(flagged)} of {n_ok} mask(s): expected Dice below {below:g} "
                    f"(results.csv: expected_dice, uncertain)"), file=sys.stderr)
    if report:
        page = write_report(report, rows, below, title=f"lung-unet predict, model {version}")
        print(printable(f"report: {page}"), file=sys.stderr)


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
