"""A kept candidate checked again on the corrections accepted since it was made (training/recheck.py,
``lung-unet models --recheck``): real tiny U-Nets in a real registry, a real corrections store."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from scipy.ndimage import grey_dilation

from conftest import TINY
from napari_lung_unet.cli import main
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.nn.model import UNet
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsStore
from training.recheck import recheck

MADE = "2026-12-01T10:00:00+00:00"


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


@pytest.fixture
def registry(isolated_home) -> Registry:  # noqa: ANN001 - an empty LUNG_UNET_HOME
    registry = Registry()
    for seed, version in ((0, "base"), (1, "cand")):
        torch.manual_seed(seed)
        card = ModelCard(version=version, architecture=TINY, input_size=64, status="trained", created=MADE,
                         parent="base" if version == "cand" else None,
                         extra={"finetune": {"train_cases": ["trained0"]}} if version == "cand" else {})
        registry.add(UNet(TINY), card)
    registry.set_current("base")
    return registry


def _accept(store: CorrectionsStore, case_id: str, seed: int, minutes: float) -> None:
    image, labels = make_phantom((96, 96), seed=seed)
    accepted = (datetime.fromisoformat(MADE) + timedelta(minutes=minutes)).isoformat(timespec="seconds")
    store.add(image, grey_dilation(labels, size=(5, 5)),
              CorrectionRecord(case_id, f"/x/{case_id}.png", "0" * 64, "base", 0.1, accepted=accepted))


def test_the_candidate_is_scored_on_the_corrections_accepted_since_it_was_made(registry: Registry, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    store = CorrectionsStore(tmp_path / "corrections")
    _accept(store, "before0", 40, -5)  # accepted before the candidate: it may have trained on it
    _accept(store, "trained0", 41, 5)  # a re-accept of a case it trained on
    for i in range(4):
        _accept(store, f"later{i}", 50 + i, 10 + i)
    result = recheck("cand", store.root, registry)
    assert sorted(result.cases) == [f"later{i}" for i in range(4)]
    for version, scores in (("base", result.before), ("cand", result.after)):
        predictor = Predictor(registry.load(version), device="cpu")
        expected = {}
        for case_id in result.cases:
            case = store.case(case_id)
            labels = predictor.predict(iio.imread(case.image)).labels
            expected[case_id] = _dice(labels > 0, iio.imread(case.mask) > 0)
        np.testing.assert_allclose(scores, [expected[c] for c in result.cases], atol=1e-6)
    line = result.line()
    assert line.startswith(f"On your 4 corrections accepted since cand was made: base {np.mean(result.before):.4f}, "
                           f"cand {np.mean(result.after):.4f}")
    assert result.test.n == 4 and abs(result.test.mean_gain - (np.mean(result.after) - np.mean(result.before))) < 1e-9
    assert line.endswith("a gain beyond their noise (" + result.test.method + ").") == result.test.gained

    capsys.readouterr()
    code = main(["models", "--recheck", "cand", "--corrections", str(store.root)])
    printed = capsys.readouterr().out.splitlines()
    assert code == 0 and printed[0] == line
    assert printed[1:] == (["Make it current: lung-unet models --rollback cand"] if result.test.gained else [])


def test_a_recheck_that_cannot_run_says_why(registry: Registry, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    store = CorrectionsStore(tmp_path / "corrections")
    _accept(store, "before0", 40, -5)
    with pytest.raises(ValueError, match="no corrections .* accepted since cand was made"):
        recheck("cand", store.root, registry)
    with pytest.raises(ValueError, match="base is the current model already"):
        recheck("base", store.root, registry)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="is not a corrections store"):
        recheck("cand", tmp_path / "plain", registry)
    assert main(["models", "--recheck", "base", "--corrections", str(store.root)]) != 0
    assert "base is the current model already" in capsys.readouterr().err
