"""expected_dice (issue 29): calibrated on real data, the same number in results.csv, the SEG and the record,
a flag count from ``predict --flag-below``, and a report page a real headless Chromium opens with every thumbnail."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from dicom_files import write_radiograph
from scipy import stats

from napari_lung_unet.batch.results import read_rows
from napari_lung_unet.cli import main
from napari_lung_unet.dicom.seg import seg_expected_dice
from napari_lung_unet.nn.model_io import load_model
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.nn.quality import region_hint, review_order_key
from napari_lung_unet.settings import bundled_model_dir
from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsStore
from training.data import read_pair, split_of_run
from training.metrics import binary_metrics

REFERENCE = Path(__file__).resolve().parents[1] / "napari_lung_unet" / "reference"


@pytest.mark.data
def test_expected_dice_reads_as_a_dice_on_held_out_cases(real_data: Path) -> None:
    """On the bundled model's validation split (never trained on): the estimate's error and bias against the
    true Dice stay within the issue's bar, and it ranks the cases better than chance. Every fourth case of
    each set keeps the test short; each case is drawn in the convention its mask is drawn in."""
    loaded = load_model(bundled_model_dir())
    assert loaded.card.quality is not None and loaded.card.quality.model_version == loaded.card.version
    predictor = Predictor(loaded, device="cpu")
    estimate, truth = [], []
    for name in ("montgomery", "shenzhen", "covid_v7labs"):
        _, val = split_of_run(loaded.card, real_data / name)
        for pair in val[::4]:
            image, mask = read_pair(pair)
            prediction = predictor.for_convention(pair.convention).predict(image)
            estimate.append(prediction.expected_dice)
            truth.append(float(binary_metrics(torch.from_numpy(prediction.labels > 0)[None], torch.from_numpy(mask)[None])["dice"][0]))
    estimate, truth = np.array(estimate), np.array(truth)
    assert len(truth) >= 20
    assert np.abs(estimate - truth).mean() <= 0.02, np.abs(estimate - truth).mean()
    assert abs(estimate.mean() - truth.mean()) <= 0.01  # calibrated: no systematic optimism
    assert stats.spearmanr(estimate, truth)[0] > 0.4


def _dicom_folder(folder: Path) -> Path:
    folder.mkdir()
    image = iio.imread(REFERENCE / "images" / "00870a9c.png")  # CC BY; any chest X-ray does
    write_radiograph(folder / "chest.dcm", image[::2, ::2], "explicit")
    return folder / "chest.dcm"


def test_results_seg_and_record_carry_the_same_number(tmp_path: Path, tiny_current: str) -> None:
    source = _dicom_folder(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["predict", str(source.parent), "-o", str(out), "--seg", "--device", "cpu", "--workers", "1"]) == 0
    [row] = read_rows(out / "results.csv").values()
    in_table = float(row["expected_dice"])
    assert 0.0 <= in_table <= 1.0 and row["confidence"] == row["expected_dice"]  # the old column: the same number
    assert seg_expected_dice(out / "chest.seg.dcm") == in_table
    # what the dock records on Accept: the proposal's own estimate, from the same model on the same pixels
    prediction = Predictor.from_registry(device="cpu").predict(iio.imread(REFERENCE / "images" / "00870a9c.png")[::2, ::2])
    assert round(prediction.expected_dice, 4) == in_table
    store = CorrectionsStore(tmp_path / "store")
    labels = iio.imread(out / "chest.png")
    record = CorrectionRecord(case_id="chest", source_path=str(source), image_sha256="", model_version=row["model_version"],
                              fraction_changed=0.0, proposal_expected_dice=round(prediction.expected_dice, 4))
    name = store.add(source, labels, record)
    assert store.record(name).proposal_expected_dice == in_table


def _lung_unet() -> list[str]:
    exe = Path(sys.executable).with_name("lung-unet")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "napari_lung_unet.cli"]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium not installed (Debian package chromium; .ci/run installs it)")
        pytest.skip("chromium not installed")
    return found


def test_flag_below_counts_and_the_report_opens_in_a_real_browser(tmp_path: Path, tiny_current: str) -> None:
    """A real `lung-unet predict` process flags rows under D and says how many; its report page, opened by
    headless Chromium from disk with the network off, shows every flagged case's thumbnail loaded."""
    browser = _chromium()
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in sorted((REFERENCE / "images").glob("*.png"))[:5]:
        iio.imwrite(inputs / path.name, iio.imread(path)[::4, ::4])  # CC BY images, shrunk: a short test
    out, report = tmp_path / "out", tmp_path / "report"
    done = subprocess.run([*_lung_unet(), "predict", str(inputs), "-o", str(out), "--device", "cpu", "--workers", "1",
                           "--flag-below", "0.999", "--report", str(report)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = read_rows(out / "results.csv").values()
    flagged = [r for r in rows if float(r["expected_dice"]) < 0.999]
    assert all((r["uncertain"] == "True") == (r in flagged) for r in rows)
    said = re.search(r"flagged (\d+) of (\d+) mask", done.stderr)
    assert said and (int(said.group(1)), int(said.group(2))) == (len(flagged), 5)
    assert flagged, "a tiny phantom model is never 0.999 sure: the page must have thumbnails to load"
    page = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
         "--virtual-time-budget=5000", "--dump-dom", (report / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    title = re.search(r"<title>([^<]*)</title>", page.stdout)
    assert title, page.stderr[-2000:]
    assert title.group(1).endswith(f" — {len(flagged)}/{len(flagged)} thumbnails"), title.group(1)
    assert "<svg" in page.stdout and page.stdout.count("<tr") == len(rows) + 1  # histogram, and every row + header


def test_region_hint_names_the_unsure_part_and_the_order_puts_the_least_sure_first() -> None:
    labels = np.zeros((120, 120), np.uint8)
    labels[20:100, 15:50] = 1  # the patient's right lung: on the image's left
    labels[20:100, 70:105] = 2  # the left lung
    prob = np.where(labels > 0, 0.99, 0.01).astype(np.float32)
    prob[80:100, 70:105] = 0.5  # the model hesitates at the bottom of the left lung
    text, hint = region_hint(prob, labels)
    assert text == "the lower left lung"
    assert hint.shape == labels.shape and hint[90, 85] and not hint[30, 30]
    sure_text, sure_hint = region_hint(np.where(labels > 0, 1.0, 0.0), labels)
    assert sure_text == "" and not sure_hint.any()
    cases = {"a": 0.97, "b": None, "c": 0.91, "d": 0.95}
    assert sorted(cases, key=lambda k: review_order_key(cases[k])) == ["c", "d", "a", "b"]


def test_a_worklist_orders_its_unreviewed_cases_least_sure_first(tmp_path: Path) -> None:
    from napari_lung_unet.store.worklist import ACCEPTED, Worklist

    folder = tmp_path / "xrays"
    folder.mkdir()
    for i in range(5):
        iio.imwrite(folder / f"case{i}.png", np.full((64, 64), 40 * i, np.uint8))
    worklist = Worklist(folder)
    blank = np.zeros((64, 64), np.uint8)
    for i, value in [(0, 0.97), (1, 0.91), (3, 0.95), (4, 0.80)]:
        worklist.save_proposal(worklist.cases[i], blank, "v1", value)
    worklist.set_status(worklist.cases[4], ACCEPTED)  # reviewed: out of the queue however unsure
    again = Worklist(folder)  # the order survives a restart: it comes from the saved estimates
    assert [again.cases[i].path.name for i in again.least_sure_first()] == ["case1.png", "case3.png", "case0.png", "case2.png"]


def test_a_fine_tune_keeps_its_parents_calibration(isolated_home: Path, tmp_path: Path) -> None:
    """A candidate's card carries the parent's expected_dice calibration, naming the weights it was fitted on."""
    from phantom_models import TINY_BUDGET, wider_lungs_store

    from napari_lung_unet.nn.card import ModelCard
    from napari_lung_unet.nn.model import UNet
    from napari_lung_unet.nn.quality_card import QualityCalibration
    from napari_lung_unet.nn.registry import Registry
    from training.finetune import FinetuneConfig, finetune
    from conftest import TINY

    calibration = QualityCalibration(features=["unsure", "whole_lung"], mean=[-3.0, 0.3], scale=[0.4, 0.5],
                                     coef=[0.5, -0.2], intercept=-3.4, model_version="base", fitted_on="a test")
    registry = Registry()
    torch.manual_seed(0)
    registry.add(UNet(TINY), ModelCard(version="base", architecture=TINY, input_size=64, status="trained", quality=calibration))
    registry.set_current("base")
    store = wider_lungs_store(tmp_path / "corrections")
    result = finetune(FinetuneConfig(corrections=str(store), steps=5, batch_size=4, lr=3e-3, replay=[], device="cpu",
                                     forgetting_budget=TINY_BUDGET))
    card = registry.card(result.version)
    assert card.parent == "base" and card.quality == calibration and card.quality.model_version == "base"
    assert result.summary[-1] == (f"Expected Dice: {result.version} keeps base's calibration (fitted on base's outputs); "
                                  "a fine-tune does not re-fit it.")
