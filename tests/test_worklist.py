"""The worklist bookkeeping (no GUI): discovery, status persistence, drafts, navigation."""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.store.worklist import (
    ACCEPTED,
    EDITED,
    PROPOSED,
    SKIPPED,
    STATE_DIR_NAME,
    Worklist,
    WorklistError,
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "xrays"
    root.mkdir()
    for i in range(3):
        iio.imwrite(root / f"case{i}.png", make_phantom((96, 80), seed=i, dtype=np.uint8)[0])
    (root / "notes.txt").write_text("not an image")
    return root


def test_cases_in_name_order_with_new_status(folder: Path):
    wl = Worklist(folder)
    assert [c.case_id for c in wl.cases] == ["case0", "case1", "case2"]
    assert {c.status for c in wl.cases} == {"new"}
    assert wl.state_dir == folder / STATE_DIR_NAME


def test_status_current_and_proposal_survive_a_restart(folder: Path):
    wl = Worklist(folder)
    labels = np.zeros((96, 80), np.uint8)
    labels[10:40, 10:30] = 1
    wl.save_proposal(wl.cases[0], labels, "v1", 0.42)
    wl.set_status(wl.cases[1], ACCEPTED)
    wl.set_status(wl.cases[2], SKIPPED)
    wl.set_current(1)

    again = Worklist(folder)
    assert [c.status for c in again.cases] == [PROPOSED, ACCEPTED, SKIPPED]
    assert again.current == 1
    assert again.cases[0].model_version == "v1" and again.cases[0].uncertain
    np.testing.assert_array_equal(again.load_proposal("case0", (96, 80)), labels)
    assert again.load_proposal("case0", (50, 50)) is None  # another shape: the image was replaced


def test_settings_survive_a_restart_and_old_files_have_none(folder: Path):
    import json

    wl = Worklist(folder)
    wl.set_status(wl.cases[0], ACCEPTED)  # a state file as older versions wrote it: no settings
    assert "settings" not in json.loads(wl.state_file.read_text())
    assert Worklist(folder).settings == {}
    wl.settings["convention"] = "whole-lung"
    wl.save()
    again = Worklist(folder)
    assert again.settings == {"convention": "whole-lung"} and again.cases[0].status == ACCEPTED


def test_a_proposal_records_its_convention_and_old_files_read_as_lung_fields(folder: Path):
    import json

    wl = Worklist(folder)
    labels = np.zeros((96, 80), np.uint8)
    wl.save_proposal(wl.cases[0], labels, "v1", 0.9, "whole-lung")
    wl.save_proposal(wl.cases[1], labels, "v1", 0.9)  # no convention asked: lung fields
    again = Worklist(folder)
    assert [c.convention for c in again.cases] == ["whole-lung", "lung-fields", None]
    assert again.cases[0].proposal_convention == "whole-lung"
    # a state file as older versions wrote it: no convention anywhere; its proposals drew lung fields
    data = json.loads(wl.state_file.read_text())
    for entry in data["cases"].values():
        assert set(entry) == {"file", "status", "model_version", "confidence", "error", "extra"}  # old readers load it
        entry["extra"] = {}
    wl.state_file.write_text(json.dumps(data))
    old = Worklist(folder)
    assert old.load_error is None and old.cases[0].status == PROPOSED
    assert old.cases[0].convention is None and old.cases[0].proposal_convention == "lung-fields"
    old.forget_proposal(old.cases[0])  # redrawn in another convention: new again, nobody proposed it
    assert (old.cases[0].status, old.cases[0].model_version, old.cases[0].confidence) == ("new", None, None)


def test_drafts_round_trip_atomically(folder: Path):
    wl = Worklist(folder)
    draft = np.zeros((96, 80), np.uint8)
    draft[5:9, 5:9] = 2
    wl.save_draft("case1", draft)
    np.testing.assert_array_equal(Worklist(folder).load_draft("case1", (96, 80)), draft)
    leftovers = [p.name for p in wl.draft_path("case1").parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temp files left behind
    assert wl.load_draft("case2", (96, 80)) is None


def test_step_and_unreviewed_filter(folder: Path):
    wl = Worklist(folder)
    wl.set_status(wl.cases[1], ACCEPTED)
    assert wl.step(0, 1) == 1
    assert wl.step(0, 1, unreviewed_only=True) == 2
    assert wl.step(2, -1, unreviewed_only=True) == 0
    assert wl.step(2, 1) is None
    wl.set_status(wl.cases[2], EDITED)
    assert wl.first_unreviewed() == 0


def test_uncertain_cases_come_first(folder: Path):
    wl = Worklist(folder)
    blank = np.zeros((96, 80), np.uint8)
    wl.save_proposal(wl.cases[0], blank, "v1", 0.99)
    wl.save_proposal(wl.cases[2], blank, "v1", 0.30)
    assert wl.first_unreviewed(uncertain_first=True) == 2


def test_least_sure_first_order_and_steps(folder: Path):
    wl = Worklist(folder)
    blank = np.zeros((96, 80), np.uint8)
    wl.save_proposal(wl.cases[0], blank, "v1", 0.97)  # case1 is not proposed yet: no estimate
    wl.save_proposal(wl.cases[2], blank, "v1", 0.91)
    assert wl.order() == [0, 1, 2]
    assert wl.order(least_sure_first=True) == [2, 0, 1]  # lowest expected Dice first, unknown after
    assert wl.step(2, 1, least_sure_first=True) == 0
    assert wl.step(0, -1, least_sure_first=True) == 2
    assert wl.step(1, 1, least_sure_first=True) is None
    wl.set_status(wl.cases[2], ACCEPTED)
    assert wl.order(least_sure_first=True) == [0, 1, 2]  # reviewed cases go to the end, in file order
    assert wl.step(2, 1, least_sure_first=True) == 0  # from a reviewed case: the least sure one left
    assert wl.step(1, 1, least_sure_first=True, unreviewed_only=True) is None


def test_damaged_state_file_is_set_aside(folder: Path):
    wl = Worklist(folder)
    wl.set_status(wl.cases[0], ACCEPTED)
    wl.state_file.write_text("{ not json")
    again = Worklist(folder)
    assert again.load_error and "unreadable" in again.load_error
    assert again.cases[0].status == "new"
    assert wl.state_file.with_suffix(".json.damaged").is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_folder_keeps_state_in_home(folder: Path, isolated_home: Path):
    folder.chmod(0o555)
    try:
        wl = Worklist(folder)
        wl.set_status(wl.cases[0], ACCEPTED)
        assert isolated_home in wl.state_dir.parents
        assert Worklist(folder).cases[0].status == ACCEPTED
    finally:
        folder.chmod(0o755)


def test_not_a_worklist(tmp_path: Path):
    with pytest.raises(WorklistError, match="not a folder"):
        Worklist(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorklistError, match="no X-ray images"):
        Worklist(tmp_path / "empty")


def test_same_stem_different_suffix_are_two_cases(tmp_path: Path):
    image = make_phantom((64, 64), seed=1, dtype=np.uint8)[0]
    iio.imwrite(tmp_path / "a.png", image)
    iio.imwrite(tmp_path / "a.tif", image)
    assert [c.case_id for c in Worklist(tmp_path).cases] == ["a", "a-2"]
