"""The per-image steps of ``lung-unet predict``: load before the network, finish after it (neither needs the model).

They run in worker processes (local ``--workers N``), in threads (``--workers 1``) or inside Dask
workers, so everything they take and return is small and picklable, and they never raise: a
failure comes back as :class:`Failed`, because some decoders raise exceptions that do not pickle.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..images.conventions import DEFAULT_CONVENTION
from ..images.labels import LEFT_LUNG, RIGHT_LUNG
from ..images.read import is_dicom, read_xray
from ..nn.card import ModelCard
from ..nn.predict import Predictor, finish_for, prepare_for
from ..store.atomic import atomic_write_bytes, atomic_write_png, encode_png
from ..nn.quality_card import FLAG_BELOW, is_flagged
from ..text import printable
from .results import FAILED, OK, Row

OVERLAY_SUFFIX = "_overlay"


@dataclass(frozen=True)
class Job:
    path: Path
    stem: str  # output name without extension, unique within this run


@dataclass(frozen=True)
class Settings:
    """What every worker needs to know about the run (not the model's weights)."""

    output: Path
    card: ModelCard
    overlay: bool = False
    seg: bool = False  # write <stem>.seg.dcm for DICOM inputs
    # the lung convention drawn: each worker's Predictor picks the card's output for it, and the
    # row and the SEG record it (checked against the card by the main process before any worker starts)
    convention: str = DEFAULT_CONVENTION
    flag_below: float = FLAG_BELOW  # a row whose expected Dice is below this is marked ``uncertain`` (--flag-below)

    def mask_path(self, job: Job) -> Path:
        return self.output / f"{job.stem}.png"

    def outputs(self, job: Job) -> list[Path]:
        """Every file a complete result of ``job`` consists of, the mask first."""
        paths = [self.mask_path(job)]
        if self.overlay:
            paths.append(self.output / f"{job.stem}{OVERLAY_SUFFIX}.png")
        if self.seg and is_dicom(job.path):
            from ..dicom.seg import SEG_SUFFIX  # lazy: highdicom loads only for --seg

            paths.append(self.output / f"{job.stem}{SEG_SUFFIX}")
        return paths


@dataclass
class Loaded:
    """An image ready for the network, and what finishing it needs."""

    x: np.ndarray  # float32 S×S network input
    shape: tuple[int, int]
    spacing: tuple[float, float] | None
    pixels: np.ndarray | None  # the full image, kept only for --overlay
    seconds: float


@dataclass
class Failed:
    reason: str  # one line, without the file name
    trace: str  # for --debug


def failure(path: Path, exc: BaseException) -> Failed:
    reason = str(exc)
    if reason.startswith(f"{path}: "):  # ImageError messages already name the file
        reason = reason[len(f"{path}: "):]
    if not isinstance(exc, (ValueError, OSError)):
        reason = f"{type(exc).__name__}: {reason}"
    return Failed(reason, "".join(traceback.format_exception(exc)))


def load(job: Job, settings: Settings) -> Loaded | Failed:
    """Read and pre-process one image."""
    started = time.perf_counter()
    try:
        xray = read_xray(job.path)
        for note in xray.notes:  # a damaged spacing: the row has no areas, and this says why
            print(f"note: {printable(note)}", file=sys.stderr)
        x, shape = prepare_for(settings.card, xray)
        pixels = xray.pixels if settings.overlay else None
        return Loaded(x.numpy(), shape, xray.spacing, pixels, time.perf_counter() - started)
    except Exception as exc:  # decoders raise many types for hostile files; each is this file's failure
        return failure(job.path, exc)


def network(predictor: Predictor, batch: list[Loaded]) -> tuple[np.ndarray, float]:
    """Run the network on one batch of loaded images; return the probabilities and each image's share of the time."""
    started = time.perf_counter()
    probs = predictor.network(torch.from_numpy(np.stack([loaded.x for loaded in batch])))
    return probs, (time.perf_counter() - started) / len(batch)


def finish(job: Job, loaded: Loaded, prob: np.ndarray, network_seconds: float, settings: Settings) -> Row | Failed:
    """Post-process the network's probability, write the outputs (all or nothing) and describe them as a row."""
    started = time.perf_counter()
    try:
        prediction = finish_for(settings.card, prob, loaded.shape, settings.convention)
        expected = round(prediction.expected_dice, 4)  # one number for the row and the SEG
        digest = _write(job, settings, prediction.labels, loaded.pixels, expected)
    except Exception as exc:  # disk full, permissions: this file failed, the batch goes on
        return failure(job.path, exc)
    right = int(np.count_nonzero(prediction.labels == RIGHT_LUNG))
    left = int(np.count_nonzero(prediction.labels == LEFT_LUNG))
    cm2 = loaded.spacing[0] * loaded.spacing[1] / 100.0 if loaded.spacing else None  # mm² per pixel -> cm²
    return Row(
        input=input_key(job.path), output=path_text(os.path.abspath(settings.mask_path(job))), status=OK,
        right_lung_px=right, left_lung_px=left,
        right_lung_cm2=right * cm2 if cm2 else None, left_lung_cm2=left * cm2 if cm2 else None,
        expected_dice=expected, confidence=expected, uncertain=is_flagged(expected, settings.flag_below),
        model_version=settings.card.version,
        convention=settings.convention, mask_sha256=digest,
        seconds=round(loaded.seconds + network_seconds + time.perf_counter() - started, 4),
    )


def failed_row(job: Job, failed: Failed, settings: Settings) -> Row:
    return Row(input=input_key(job.path), output="", status=FAILED, error=failed.reason, model_version=settings.card.version,
               convention=settings.convention)


def input_key(path: Path) -> str:
    """How results.csv names an input: absolute, so a re-run from another folder still finds its row."""
    return path_text(os.path.abspath(path))


def path_text(path: str | Path) -> str:
    """A file name as one line of UTF-8 text, the same on every run: bytes that are not UTF-8 as ``\\xf6``,
    a newline as ``\\n``. The OS may hand out any bytes but a CSV cell must be text, and a re-run must
    find the same key again to count the input as done."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return text.replace("\r", "\\r").replace("\n", "\\n")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(job: Job, settings: Settings, labels: np.ndarray, pixels: np.ndarray | None, expected_dice: float) -> str:
    """Write every output of ``job`` atomically; a failure removes the ones already written. Returns the mask's hash."""
    targets = settings.outputs(job)
    data = encode_png(labels)
    written = [atomic_write_bytes(targets[0], data)]
    try:
        for target in targets[1:]:
            if target.name.endswith(f"{OVERLAY_SUFFIX}.png"):
                from ..images.overlay import make_overlay

                assert pixels is not None, "load() keeps the pixels when settings.overlay"
                written.append(atomic_write_png(target, make_overlay(pixels, labels)))
            else:
                from ..dicom.seg import write_seg_for_image

                written.append(write_seg_for_image(job.path, target, labels, settings.card.version, settings.convention,
                                                   expected_dice=expected_dice))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return sha256(data)
