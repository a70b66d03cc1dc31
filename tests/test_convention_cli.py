"""``--convention`` on predict, evaluate and finetune, and the convention recorded in results.csv,
the DICOM SEG and the corrections store (issue 17, item 3).

The two-convention model of conftest draws no lung in lung-fields and lung everywhere in whole-lung,
so a mask shows which output drew it; the one-convention tiny model knows only lung-fields.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import imageio.v3 as iio
import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_files import write_radiograph

from napari_lung_unet._reader import seg_layer
from napari_lung_unet.batch.results import RESULTS_NAME, read_rows
from napari_lung_unet.cli import main
from napari_lung_unet.dicom.seg import seg_bytes, seg_convention, seg_for_image
from napari_lung_unet.images.labels import LUNGS
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.nn.model_io import load_model
from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsStore
from training.data import discover_pairs
from training.finetune_data import correction_pairs


@pytest.fixture
def xrays(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        iio.imwrite(folder / f"c{i}.png", make_phantom((96 + 8 * i, 80), seed=30 + i, dtype=np.uint8)[0])
    return folder


def _lung_pixels(folder: Path) -> dict[str, int]:
    return {p.name: int(np.count_nonzero(iio.imread(p))) for p in sorted(folder.glob("c*.png"))}


def _predict(inputs: Path, out: Path, model: Path, *extra: str) -> list[str]:
    """``lung-unet predict`` on the CPU in this process (one worker unless ``extra`` says otherwise)."""
    return ["predict", str(inputs), "-o", str(out), "--model", str(model), "--device", "cpu", "--workers", "1", *extra]


def _summary(stderr: str) -> str:
    (line,) = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("done ")]
    return line


@pytest.mark.parametrize("workers", ["1", "2"])  # 2: the network runs in worker processes, which load the model themselves
def test_predict_draws_the_asked_convention_and_results_csv_records_it(
    tmp_path: Path, xrays: Path, two_convention_model_dir: Path, workers: str,
) -> None:
    fields, whole = tmp_path / "fields", tmp_path / "whole"
    assert main(_predict(xrays, fields, two_convention_model_dir, "--workers", workers)) == 0  # no flag: the model's own
    assert main(_predict(xrays, whole, two_convention_model_dir, "--workers", workers, "--convention", "whole-lung")) == 0
    assert set(_lung_pixels(fields).values()) == {0}
    for name, pixels in _lung_pixels(whole).items():
        assert pixels == iio.imread(xrays / name).size  # every pixel is lung: the whole-lung output drew it
    assert set(pd.read_csv(fields / RESULTS_NAME).convention) == {"lung-fields"}
    table = pd.read_csv(whole / RESULTS_NAME)
    assert len(table) == 3 and set(table.convention) == {"whole-lung"} and set(table.model_version) == {"both"}


@pytest.mark.slow
def test_the_convention_reaches_dask_workers(tmp_path: Path, xrays: Path, two_convention_model_dir: Path) -> None:
    """The cluster's workers build their own Predictor from the scattered model: the run's settings carry the convention."""
    pytest.importorskip("distributed", reason="the [cluster] extra is not installed")
    from dask_cluster import local_cluster  # pytest puts tests/ on sys.path

    out = tmp_path / "out"
    (tmp_path / "dask").mkdir()
    with local_cluster(tmp_path / "dask", nworkers=1) as address:
        assert main(_predict(xrays, out, two_convention_model_dir, "--scheduler", address, "--convention", "whole-lung")) == 0
    for name, pixels in _lung_pixels(out).items():
        assert pixels == iio.imread(xrays / name).size
    assert {r["convention"] for r in read_rows(out / RESULTS_NAME).values()} == {"whole-lung"}


def test_a_rerun_in_the_other_convention_redoes_every_input(
    tmp_path: Path, xrays: Path, two_convention_model_dir: Path, capsys: pytest.CaptureFixture,
) -> None:
    out = tmp_path / "out"
    args = _predict(xrays, out, two_convention_model_dir)
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--convention", "lung-fields"]) == 0  # the model's own, named: already done
    assert _summary(capsys.readouterr().err).startswith("done 0, skipped 3, failed 0 ")
    assert main([*args, "--convention", "whole-lung"]) == 0
    assert _summary(capsys.readouterr().err).startswith("done 3, skipped 0, failed 0 ")
    assert {r["convention"] for r in read_rows(out / RESULTS_NAME).values()} == {"whole-lung"}
    assert all(pixels > 0 for pixels in _lung_pixels(out).values())


def test_resuming_into_a_results_csv_from_before_the_convention_column(
    tmp_path: Path, xrays: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture,
) -> None:
    out = tmp_path / "out"
    args = _predict(xrays, out, tiny_model_dir)
    assert main(args) == 0
    capsys.readouterr()
    # the table as a version without the column wrote it (the column was added at the end of the fields)
    old = pd.read_csv(out / RESULTS_NAME, dtype=str, keep_default_na=False).drop(columns="convention")
    old["my_note"] = "kept"  # a user's own column
    old.to_csv(out / RESULTS_NAME, index=False)
    assert main(args) == 0
    captured = capsys.readouterr().err
    assert _summary(captured).startswith("done 0, skipped 3, failed 0 ")  # its rows are lung fields: all done
    assert "note:" not in captured and not list(out.glob(f"{RESULTS_NAME}.unused*"))
    with open(out / RESULTS_NAME, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert "convention" in header and "my_note" in header
    rows = read_rows(out / RESULTS_NAME)
    assert {r["convention"] for r in rows.values()} == {""} and {r["my_note"] for r in rows.values()} == {"kept"}

    extra = xrays / "c9.png"
    iio.imwrite(extra, make_phantom((88, 80), seed=39, dtype=np.uint8)[0])
    assert main(args) == 0
    assert _summary(capsys.readouterr().err).startswith("done 1, skipped 3, failed 0 ")
    rows = read_rows(out / RESULTS_NAME)
    assert rows[str(extra)]["convention"] == "lung-fields" and rows[str(extra)]["my_note"] == ""


@pytest.mark.parametrize("command", ["predict", "evaluate", "finetune"])
def test_a_model_that_does_not_know_the_convention_refuses_it_by_name_and_writes_nothing(
    tmp_path: Path, xrays: Path, phantom_dataset: Path, tiny_model_dir: Path, command: str, capsys: pytest.CaptureFixture,
) -> None:
    out = tmp_path / "out"
    registry = Registry()
    loaded = load_model(tiny_model_dir)
    registry.add(loaded.model, loaded.card)
    registry.set_current("tiny")
    versions = [c.version for c in registry.read_cards()[0]]
    argv = {
        "predict": ["predict", str(xrays), "-o", str(out), "--seg"],
        "evaluate": ["evaluate", "--images", str(phantom_dataset / "images"), "--masks", str(phantom_dataset / "masks"),
                     "--csv", str(out / "scores.csv")],
        "finetune": ["finetune", "--corrections", str(phantom_dataset), "--steps", "1"],
    }[command]
    assert main([*argv, "--convention", "whole-lung", "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: ") and "tiny" in err and "whole-lung" in err and "knows only lung-fields" in err
    assert not out.exists()
    assert [c.version for c in registry.read_cards()[0]] == versions and registry.current_version() == "tiny"


def test_the_exit_code_of_a_refused_convention_is_non_zero(tmp_path: Path, xrays: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "napari_lung_unet.cli", "predict", str(xrays), "-o", str(out), "--model", str(tiny_model_dir),
         "--convention", "whole-lung", "--device", "cpu"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1 and not out.exists()
    assert done.stderr.strip() == (
        "error: model tiny knows only lung-fields; it cannot propose whole-lung masks "
        "(pick a model that knows whole-lung, e.g. default-3, or switch the convention)"
    )


@pytest.fixture
def dicom_xray(tmp_path: Path) -> Path:
    folder = tmp_path / "dicom"
    folder.mkdir()
    return write_radiograph(folder / "chest.dcm", make_phantom((128, 112), seed=5, dtype=np.uint8)[0])


@pytest.mark.parametrize("convention", ["lung-fields", "whole-lung"])
def test_the_seg_says_its_convention_in_each_segment_and_the_series(
    tmp_path: Path, dicom_xray: Path, two_convention_model_dir: Path, convention: str,
) -> None:
    out = tmp_path / "out"
    assert main(_predict(dicom_xray.parent, out, two_convention_model_dir, "--seg", "--convention", convention)) == 0
    path = out / "chest.seg.dcm"
    seg = pydicom.dcmread(path)
    descriptions = {int(s.SegmentNumber): (s.SegmentLabel, s.SegmentDescription) for s in seg.SegmentSequence}
    estimate = f", expected Dice {float(read_rows(out / RESULTS_NAME)[str(dicom_xray)]['expected_dice']):.4f}"  # the row's number
    assert descriptions == {lung.value: (lung.name, f"{lung.name} ({convention} convention){estimate}") for lung in LUNGS}
    assert seg.SeriesDescription == f"Lung segmentation ({convention} convention)"
    read = hd.seg.segread(path)  # highdicom reads the optional attribute back too
    assert read.get_segment_description(1).SegmentDescription == f"Right lung ({convention} convention){estimate}"
    assert seg_convention(path) == convention
    labels, meta, kind = seg_layer(path)  # the napari reader hands it on with the layer
    assert kind == "labels" and meta["metadata"]["convention"] == convention
    assert (labels > 0).any() == (convention == "whole-lung")
    assert read_rows(out / RESULTS_NAME)[str(dicom_xray)]["convention"] == convention


def test_a_seg_that_names_no_convention_reads_as_none(tmp_path: Path, dicom_xray: Path) -> None:
    path = tmp_path / "old.seg.dcm"
    seg = seg_for_image(dicom_xray, np.zeros((128, 112), np.uint8), "v1")  # as SEGs were written before conventions
    path.write_bytes(seg_bytes(seg))
    assert seg_convention(path) is None
    assert "SegmentDescription" not in pydicom.dcmread(path).SegmentSequence[0]


def test_the_convention_round_trips_through_the_corrections_store(tmp_path: Path, dicom_xray: Path) -> None:
    store = CorrectionsStore(tmp_path / "store")
    labels = make_phantom((128, 112), seed=5)[1]
    seg = seg_bytes(seg_for_image(dicom_xray, labels, "both", reviewed=True, convention="whole-lung"))
    record = CorrectionRecord(case_id="chest", source_path=str(dicom_xray), image_sha256="", model_version="both",
                              fraction_changed=0.1, convention="whole-lung")
    store.add(dicom_xray, labels, record, seg)
    reread = CorrectionsStore(store.root).case("chest")
    assert reread.convention == "whole-lung" and reread.seg is not None
    assert seg_convention(reread.seg) == "whole-lung"
    assert json.loads(store.record_path("chest").read_text())["convention"] == "whole-lung"
    assert [p.convention for p in discover_pairs(store.root)] == ["whole-lung"]


def _store_of(tmp_path: Path, conventions: dict[str, str]) -> Path:
    store = CorrectionsStore(tmp_path / "store")
    for i, (case_id, convention) in enumerate(conventions.items()):
        image, labels = make_phantom((96, 96), seed=60 + i)
        record = CorrectionRecord(case_id=case_id, source_path=str(tmp_path / f"{case_id}.png"), image_sha256="",
                                  model_version="both", fraction_changed=0.1, convention=convention)
        store.add(image, labels, record)
    return store.root


def test_finetune_convention_takes_only_the_store_cases_accepted_in_it(
    tmp_path: Path, two_convention_model_dir: Path, capsys: pytest.CaptureFixture,
) -> None:
    registry = Registry()
    loaded = load_model(two_convention_model_dir)
    registry.add(loaded.model, loaded.card)
    registry.set_current("both")
    store = _store_of(tmp_path, {"w1": "whole-lung", "w2": "whole-lung", "f1": "lung-fields"})
    before = {c.version for c in registry.read_cards()[0]}
    assert main(["finetune", "--corrections", str(store), "--convention", "whole-lung", "--steps", "1",
                 "--no-replay", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Set aside 1 corrections accepted as lung-fields" in out
    (version,) = {c.version for c in registry.read_cards()[0]} - before
    done = registry.card(version).extra["finetune"]
    assert done["convention"] == "whole-lung"
    assert sorted(done["train_cases"] + done["holdout_cases"]) == ["w1", "w2"]

    # a record's own convention is never overridden: asking for one no record has stops by name
    only_fields = _store_of(tmp_path / "b", {"f1": "lung-fields", "f2": "lung-fields"})
    assert main(["finetune", "--corrections", str(only_fields), "--convention", "whole-lung", "--steps", "1",
                 "--no-replay", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "none of the 2" in err and "accepted as whole-lung (2 lung-fields)" in err
    assert {c.version for c in registry.read_cards()[0]} == before | {version}  # no new version


def test_finetune_convention_tags_a_plain_folder(phantom_dataset: Path) -> None:
    """An images/ + masks/ folder has no records: the flag says how all of it is drawn."""
    pairs, set_aside = correction_pairs(phantom_dataset, "whole-lung")
    assert len(pairs) == 6 and not set_aside and {p.convention for p in pairs} == {"whole-lung"}
    assert {p.convention for p in correction_pairs(phantom_dataset)[0]} == {"lung-fields"}


def test_evaluate_scores_every_case_in_the_given_convention(
    tmp_path: Path, phantom_dataset: Path, two_convention_model_dir: Path, capsys: pytest.CaptureFixture,
) -> None:
    common = ["evaluate", "--images", str(phantom_dataset / "images"), "--masks", str(phantom_dataset / "masks"),
              "--model", str(two_convention_model_dir), "--device", "cpu"]
    assert main([*common, "--csv", str(tmp_path / "fields.csv")]) == 0  # no flag: as before, the folder's known one
    assert main([*common, "--csv", str(tmp_path / "whole.csv"), "--convention", "whole-lung"]) == 0
    assert "all drawn whole-lung" in capsys.readouterr().out
    fields, whole = pd.read_csv(tmp_path / "fields.csv"), pd.read_csv(tmp_path / "whole.csv")
    assert set(fields.convention) == {"lung-fields"} and set(whole.convention) == {"whole-lung"}
    assert (fields.dice == 0).all()  # the lung-fields output draws no lung
    assert (whole.dice > 0).all()  # the whole-lung one draws lung everywhere, so it overlaps every true lung
