"""A whole batch in one worker process: read, network, write (``lung-unet predict --workers N`` on the CPU).

Each worker loads the model once from its folder (safetensors, never pickled) and keeps it; a task
names the folder and the version the main process loaded, so a worker can never run another model,
and the run's settings carry the lung convention, so it draws the one the main process checked.
"""

from __future__ import annotations

from pathlib import Path

from ..nn.model_io import load_model
from ..nn.predict import Predictor
from . import forkserver, steps
from .results import Row
from .steps import Failed, Job, Loaded, Settings

# imported first in the forkserver (its PRELOAD): there, this ties the server's life to the main process
forkserver.tie_server_to_parent()

_predictors: dict[tuple[Path, str, str], Predictor] = {}


def _predictor(folder: Path, version: str, convention: str) -> Predictor:
    key = (folder, version, convention)
    if key not in _predictors:
        loaded = load_model(folder)
        if loaded.card.version != version:
            raise RuntimeError(f"{folder} now holds model {loaded.card.version}, not {version}")
        _predictors.clear()  # one model per run: do not keep an old one's weights
        _predictors[key] = Predictor(loaded, device="cpu", convention=convention)
    return _predictors[key]


def run_batch(jobs: list[Job], folder: Path, settings: Settings) -> list[tuple[Job, Row | Failed]]:
    """Every job's row or failure, in the order given. Never raises (a failure is that batch's rows)."""
    try:
        predictor = _predictor(folder, settings.card.version, settings.convention)
    except Exception as exc:  # the model folder changed or vanished: every image of the batch failed
        return [(job, steps.failure(job.path, exc)) for job in jobs]
    loaded = [(job, steps.load(job, settings)) for job in jobs]
    ready = [(job, item) for job, item in loaded if isinstance(item, Loaded)]
    finished: dict[int, Row | Failed] = {}
    if ready:
        try:
            probs, share = steps.network(predictor, [item for _, item in ready])
        except Exception as exc:
            return [(job, item if isinstance(item, Failed) else steps.failure(job.path, exc)) for job, item in loaded]
        for (job, item), prob in zip(ready, probs):
            finished[id(job)] = steps.finish(job, item, prob, share, settings)
    return [(job, item if isinstance(item, Failed) else finished[id(job)]) for job, item in loaded]
