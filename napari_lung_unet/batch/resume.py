"""Which inputs an earlier (possibly killed) run of ``lung-unet predict`` already finished.

An input is done only when results.csv has an ``ok`` row for it from the same model, in the same
lung convention (an empty cell, from a table older than the column, is lung fields), naming the
same mask, the mask's bytes still hash to the row's digest, and its other outputs exist. The row
is appended after the mask is renamed into place, so a kill between the two costs one image again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .results import LEGACY, OK
from .steps import Job, Settings, input_key, path_text, sha256


def is_done(job: Job, record: Mapping[str, str] | None, settings: Settings) -> bool:
    if record is None or record.get("status") != OK or record.get("model_version") != settings.card.version:
        return False
    if (record.get("convention") or LEGACY["convention"]) != settings.convention:
        return False
    outputs = settings.outputs(job)
    if record.get("output") != path_text(os.path.abspath(outputs[0])):
        return False
    try:
        digest = sha256(outputs[0].read_bytes())
    except OSError:
        return False
    return digest == record.get("mask_sha256") and all(path.is_file() for path in outputs[1:])


def split_done(jobs: list[Job], records: Mapping[str, Mapping[str, str]], settings: Settings) -> tuple[list[Job], list[Job]]:
    """``(to do, already done)``, each in input order."""
    todo, done = [], []
    for job in jobs:
        (done if is_done(job, records.get(input_key(job.path)), settings) else todo).append(job)
    return todo, done
