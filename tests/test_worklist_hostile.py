"""A damaged or hostile worklist.json never locks the folder, and no value outside the known set reaches a record.

Before (issue 33, item 5): a top-level ``[]`` or ``cases: []`` raised AttributeError, deep nesting
RecursionError, and the dock could not open the folder; ``settings.convention: 'sideways'`` went
into every accepted record, and then ``finetune`` and ``export`` refused the whole store.
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsError, CorrectionsStore
from napari_lung_unet.store.worklist import ACCEPTED, NEW, Worklist


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "ward"
    root.mkdir()
    for i in range(3):
        iio.imwrite(root / f"x{i}.png", np.full((40, 36), 60 * i, np.uint8))
    return root


def _write(folder: Path, content: bytes | str) -> Path:
    path = folder / ".lung_unet" / "worklist.json"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


WHOLE_FILE_DAMAGED = {
    "top-level list": "[]",
    "cases is a list": '{"cases": []}',
    "cases is text": '{"cases": "x0"}',
    "deep nesting": '{"cases": ' + "[" * 200_000 + "]" * 200_000 + "}",
    "deep nesting in a case": '{"cases": {"x0": ' + '{"a":' * 100_000 + "1" + "}" * 100_000 + "}}",
    "not UTF-8": b"\xff\xfe{}",
    "empty": "",
    "truncated": '{"cases": {"x0": {"file": "x0.png", "sta',
}


@pytest.mark.parametrize("content", WHOLE_FILE_DAMAGED.values(), ids=WHOLE_FILE_DAMAGED.keys())
def test_a_file_that_is_no_worklist_is_set_aside_and_the_folder_opens(folder: Path, content: str) -> None:
    path = _write(folder, content)
    wl = Worklist(folder)
    assert wl.load_error and "set aside as worklist.json.damaged" in wl.load_error and "\n" not in wl.load_error
    assert (path.parent / "worklist.json.damaged").read_bytes() == (content.encode() if isinstance(content, str) else content)
    assert [c.status for c in wl.cases] == [NEW] * 3
    wl.set_status(wl.cases[0], ACCEPTED)  # and review goes on, in a fresh file
    assert Worklist(folder).cases[0].status == ACCEPTED


def test_a_folder_where_the_state_file_belongs_is_set_aside(folder: Path) -> None:
    (folder / ".lung_unet" / "worklist.json").mkdir(parents=True)
    wl = Worklist(folder)
    assert wl.load_error and "set aside" in wl.load_error
    wl.set_status(wl.cases[1], ACCEPTED)
    assert Worklist(folder).cases[1].status == ACCEPTED


BAD_VALUES = {
    "entry is text": ({"x0": "accepted"}, "not a case entry"),
    "status of another type": ({"x0": {"file": "x0.png", "status": 5}}, "status 5 is not a text"),
    "unknown status": ({"x0": {"file": "x0.png", "status": "sideways"}}, "unknown status 'sideways'"),
    "confidence as text": ({"x0": {"file": "x0.png", "status": "proposed", "confidence": "high"}}, "confidence 'high'"),
    "confidence out of range": ({"x0": {"file": "x0.png", "status": "proposed", "confidence": 7}}, "not in 0..1"),
    "unknown convention": ({"x0": {"file": "x0.png", "status": "proposed", "extra": {"convention": "sideways"}}}, "unknown convention"),
    "extra of another type": ({"x0": {"file": "x0.png", "status": "accepted", "extra": []}}, "extra [] is not a mapping"),
}


@pytest.mark.parametrize(("cases", "says"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_a_value_outside_the_known_set_is_dropped_with_a_message(folder: Path, cases: dict, says: str) -> None:
    cases = {**cases, "x1": {"file": "x1.png", "status": "skipped"}}  # a good entry beside it is kept
    _write(folder, json.dumps({"cases": cases}))
    wl = Worklist(folder)
    assert wl.load_error and says in wl.load_error, wl.load_error
    assert wl.cases[1].status == "skipped"
    assert wl.cases[0].convention is None and wl.cases[0].status in ("new", "proposed", "accepted")
    assert not isinstance(wl.cases[0].confidence, str)
    wl.save()
    saved = json.loads(wl.state_file.read_text())["cases"]
    assert "sideways" not in json.dumps(saved) and "high" not in json.dumps(saved)


def test_a_convention_setting_outside_the_known_set_never_reaches_a_record(folder: Path, tmp_path: Path) -> None:
    _write(folder, json.dumps({"settings": {"convention": "sideways", "other": 1}, "current": 5}))
    wl = Worklist(folder)
    assert wl.load_error and "setting convention 'sideways'" in wl.load_error
    assert wl.settings == {"other": 1} and wl.current == 0
    _write(folder, json.dumps({"settings": [], "cases": {}}))
    assert Worklist(folder).settings == {}


def test_the_api_refuses_an_unknown_value_where_it_enters(folder: Path, tmp_path: Path) -> None:
    wl = Worklist(folder)
    case = wl.cases[0]
    with pytest.raises(ValueError, match="unknown status 'sideways'"):
        wl.set_status(case, "sideways")
    with pytest.raises(ValueError, match="unknown status"):
        case.status = "done"
    with pytest.raises(ValueError, match="unknown lung convention 'sideways'"):
        wl.record_proposal(case, "v1", 0.9, "sideways")
    assert (case.status, case.model_version, case.convention) == (NEW, None, None)  # nothing half-changed
    with pytest.raises(ValueError, match="unknown lung convention"):
        wl.settings["convention"] = "sideways"
    with pytest.raises(ValueError, match="unknown lung convention"):
        wl.settings = {"convention": "sideways"}
    wl.settings["convention"] = "whole-lung"  # a known one is taken
    store = CorrectionsStore(tmp_path / "store")
    record = CorrectionRecord("x0", str(case.path), "", "v1", 0.0, convention="sideways")  # type: ignore[arg-type]
    with pytest.raises(CorrectionsError, match="unknown lung convention 'sideways'"):
        store.add(case.path, np.ones((40, 36), np.uint8), record)
    assert not (tmp_path / "store").exists()  # nothing written
