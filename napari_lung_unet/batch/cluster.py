"""``lung-unet predict --scheduler tcp://HOST:PORT``: the same per-image steps on a Dask distributed cluster.

The client scatters the loaded model to every worker once; each task is one batch of inputs,
which its worker loads, runs through the network and finishes, writing the outputs itself, so
inputs and the output folder must be on storage every worker sees under the same path. Rows come
back to this process, the only writer of results.csv. Needs the ``[cluster]`` extra (distributed).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..nn.model_io import LoadedModel
from ..nn.predict import Predictor
from . import steps
from .results import Row
from .steps import Failed, Job, Loaded, Settings

CONNECT_TIMEOUT = "15s"

# per worker process: the Predictor built from the scattered model, so the model loads once per worker
_PREDICTORS: dict[tuple[int, str, str], tuple[LoadedModel, Predictor]] = {}
_PREDICTORS_LOCK = threading.Lock()


def run_cluster(
    address: str, jobs: list[Job], loaded: LoadedModel, settings: Settings, device: str, batch_size: int
) -> Iterator[tuple[Job, Row | Failed]]:
    """Yield ``(job, row or failure)`` for every job, in the order the cluster finishes them."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise RuntimeError("--scheduler needs Dask distributed: pip install 'napari-lung-unet[cluster]'") from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise OSError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    # workers run in other folders: every path they see must be absolute
    settings = replace(settings, output=Path(os.path.abspath(settings.output)))
    jobs = [replace(job, path=Path(os.path.abspath(job.path))) for job in jobs]
    with client:
        model = client.scatter(loaded, broadcast=True)  # once per worker, not once per task
        chunks = {}
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            chunks[client.submit(segment_batch, chunk, model, settings, device, pure=False)] = chunk
        try:
            for future in as_completed(chunks):
                try:
                    yield from future.result()
                except Exception as exc:  # the task itself failed (its worker died twice): each of its jobs failed
                    for job in chunks[future]:
                        yield job, Failed(f"{type(exc).__name__}: {exc}", "")
        finally:
            client.cancel(list(chunks))


def segment_batch(jobs: list[Job], loaded: LoadedModel, settings: Settings, device: str) -> list[tuple[Job, Row | Failed]]:
    """On a worker: load, run the network on, and finish one batch of jobs (in ``settings.convention``)."""
    predictor = _predictor(loaded, device, settings.convention)
    outcomes: list[tuple[Job, Row | Failed]] = []
    good: list[tuple[Job, Loaded]] = []
    for job in jobs:
        result = steps.load(job, settings)
        if isinstance(result, Failed):
            outcomes.append((job, result))
        else:
            good.append((job, result))
    if good:
        probs, share = steps.network(predictor, [result for _, result in good])
        for (job, result), prob in zip(good, probs):
            outcomes.append((job, steps.finish(job, result, np.asarray(prob), share, settings)))
    return outcomes


def _predictor(loaded: LoadedModel, device: str, convention: str) -> Predictor:
    key = (id(loaded), device, convention)
    with _PREDICTORS_LOCK:
        if key not in _PREDICTORS:
            _PREDICTORS[key] = (loaded, Predictor(loaded, device=device, convention=convention))  # holding ``loaded`` keeps its id unique
        return _PREDICTORS[key][1]
