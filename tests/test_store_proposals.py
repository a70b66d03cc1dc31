"""The store keeps the model's proposal beside the clinician's mask (issue 33 #6, MONAI Label's original/final):
as one unit with the case, replaced and cleaned with it, whole after a kill, optional for old records, exported
by ``lung-unet export --proposals``. Real stores, real files, real killed processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_lung_unet.cli import main
from napari_lung_unet.images.masks import MaskError
from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.store.corrections import (
    CorrectionRecord,
    CorrectionsError,
    CorrectionsStore,
    ProposalKept,
    sha256_file,
    sha256_of,
)
from napari_lung_unet.widget.accepting import write_adhoc, write_case
from training.data import discover_pairs, read_pair

SHAPE = (96, 80)
FIXTURE = Path(__file__).parent / "data" / "store_f00d2e6"  # written by the code before proposals were kept


def _case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An image, the clinician's labels, and a proposal that differs from them (the right lung cut short)."""
    image, labels = make_phantom(SHAPE, seed=seed, dtype=np.uint8)
    proposal = labels.copy()
    proposal[: SHAPE[0] // 3][proposal[: SHAPE[0] // 3] == 1] = 0
    assert not np.array_equal(proposal, labels)
    return image, labels, proposal


def _record(case_id: str = "c") -> CorrectionRecord:
    return CorrectionRecord(case_id, f"/x/{case_id}.png", "", "ft-2", 0.1, convention="whole-lung")


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_the_proposal_is_kept_beside_the_mask_with_its_version_and_convention(tmp_path: Path) -> None:
    store = CorrectionsStore(tmp_path / "store")
    image, labels, proposal = _case(1)
    store.add(image, labels, _record(), proposal=ProposalKept(proposal, "base-3", "lung-fields"))

    case = store.case("c")
    assert case.proposal is not None and case.proposal.parent == store.root / "proposals"
    np.testing.assert_array_equal(iio.imread(case.proposal), proposal)
    np.testing.assert_array_equal(iio.imread(case.mask), labels)  # the mask is still the clinician's
    record = json.loads(store.record_path("c").read_text())
    # the proposal's own model and convention, not the accept's (a convention switch with edits kept differs)
    assert (record["proposal_model_version"], record["proposal_convention"]) == ("base-3", "lung-fields")
    assert (record["model_version"], record["convention"]) == ("ft-2", "whole-lung")
    assert record["proposal_file_sha256"] == sha256_file(case.proposal)
    image_back, mask_back = read_pair(discover_pairs(store.root)[0])  # what a fine-tune reads is unchanged
    np.testing.assert_array_equal(mask_back, labels > 0)


def test_a_reaccept_replaces_the_proposal_and_cleans_its_file(tmp_path: Path) -> None:
    store = CorrectionsStore(tmp_path / "store")
    image, labels, proposal = _case(1)
    store.add(image, labels, _record(), proposal=ProposalKept(proposal, "base-3", "lung-fields"))
    first = store.case("c").proposal

    _, labels2, proposal2 = _case(2)
    store.add(image, labels2, _record(), proposal=ProposalKept(proposal2, "ft-4", "whole-lung"))
    case = store.case("c")
    assert _files(store.root / "proposals") == [case.proposal.name] != [first.name]
    np.testing.assert_array_equal(iio.imread(case.proposal), proposal2)
    assert (case.record.proposal_model_version, case.record.proposal_convention) == ("ft-4", "whole-lung")

    store.add(image, labels, _record())  # accepted again without a proposal: the case keeps none
    case = store.case("c")
    assert case.proposal is None and case.record.proposal_file == "" and case.record.proposal_convention is None
    assert _files(store.root / "proposals") == []
    assert [len(_files(store.root / f)) for f in ("images", "masks", "records")] == [1, 1, 1]


def test_a_proposal_equal_to_the_old_mask_does_not_keep_the_old_mask_file(tmp_path: Path) -> None:
    """Same content, same file name, other folder: the clean-up goes by folder and file, not by name alone."""
    store = CorrectionsStore(tmp_path / "store")
    image, labels, proposal = _case(1)
    store.add(image, labels, _record(), proposal=ProposalKept(proposal, "base-3", "lung-fields"))
    old_mask = store.case("c").mask.name

    _, labels2, _ = _case(2)
    store.add(image, labels2, _record(), proposal=ProposalKept(labels, "ft-4", "lung-fields"))  # proposes the old mask
    case = store.case("c")
    assert case.proposal.name == old_mask  # the old mask's content, now the proposal
    assert _files(store.root / "masks") == [case.mask.name]
    assert _files(store.root / "proposals") == [old_mask]


def _accept_in_subprocess(root: Path, seed: int, kill_at: int) -> subprocess.CompletedProcess:
    """Re-accept case c with its proposal; SIGKILL the process at its ``kill_at``-th atomic rename
    (1 the intent, 2 the image, 3 the mask, 4 the proposal, 5 the record)."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from napari_lung_unet.store.corrections import CorrectionsStore, ProposalKept
        from test_corrections_store import kill_at_rename
        from test_store_proposals import _case, _record

        kill_at_rename({kill_at})
        image, labels, proposal = _case({seed})
        CorrectionsStore({str(root)!r}).add(image, labels, _record(), proposal=ProposalKept(proposal, "v{seed}", "lung-fields"))
        """
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy(), timeout=120)


@pytest.mark.parametrize("kill_at", [3, 4, 5])
def test_a_killed_reaccept_leaves_the_case_whole_with_its_own_proposal(tmp_path: Path, kill_at: int) -> None:
    store = CorrectionsStore(tmp_path / "store")
    image, labels, proposal = _case(1)
    store.add(image, labels, _record(), proposal=ProposalKept(proposal, "v1", "lung-fields"))

    result = _accept_in_subprocess(store.root, seed=2, kill_at=kill_at)
    assert result.returncode == -signal.SIGKILL, result.stderr

    case = store.case("c")  # checks every file against the record
    # the kill came before the record's rename (the commit): the earlier accept, whole, with its own proposal
    assert case.record.proposal_model_version == "v1"
    _, want_labels, want_proposal = _case(1)
    np.testing.assert_array_equal(iio.imread(case.mask), want_labels)
    np.testing.assert_array_equal(iio.imread(case.proposal), want_proposal)  # never another accept's proposal

    other = _case(3)
    store.add(other[0], other[1], _record("d"), proposal=ProposalKept(other[2], "v3", "lung-fields"))
    # any next accept removes what the killed one wrote and never committed
    assert _files(store.root / "proposals") == sorted([case.proposal.name, store.case("d").proposal.name])
    assert _files(store.root / ".pending") == []


def test_bad_proposals_are_refused_by_name_and_nothing_is_written(tmp_path: Path) -> None:
    store = CorrectionsStore(tmp_path / "store")
    image, labels, proposal = _case(1)
    cases = [
        (ProposalKept(proposal[:-1], "v1", "lung-fields"), MaskError, r"case c: proposal: mask is 95×80 but its image is 96×80"),
        (ProposalKept(proposal * 100, "v1", "lung-fields"), MaskError, r"case c: proposal: mask values .* are not the labels 0/1/2"),
        (ProposalKept(proposal, "", "lung-fields"), CorrectionsError, r"case c: proposal has no model version"),
        (ProposalKept(proposal, "v1", "sideways"), CorrectionsError, r"case c: proposal: unknown lung convention 'sideways'"),
    ]
    for bad, error, message in cases:
        with pytest.raises(error, match=message):
            store.add(image, labels, _record(), proposal=bad)
    assert not store.root.exists()


def test_records_written_before_proposals_still_load_and_take_one(tmp_path: Path) -> None:
    root = Path(shutil.copytree(FIXTURE, tmp_path / "store", ignore=shutil.ignore_patterns("README.txt")))
    store = CorrectionsStore(root)
    for case_id in store.case_ids():
        assert "proposal_file" not in json.loads(store.record_path(case_id).read_text())
        case = store.case(case_id)
        assert case.proposal is None and case.record.proposal_convention is None
    assert len(discover_pairs(root)) == 2

    image, labels = make_phantom((48, 40), seed=5)
    proposal = np.where(labels == 2, 0, labels).astype(np.uint8)
    store.add(image, labels.astype(np.uint8), _record("worklist-case1"), proposal=ProposalKept(proposal, "v9", "lung-fields"))
    np.testing.assert_array_equal(iio.imread(store.case("worklist-case1").proposal), proposal)
    assert store.case("ward_a-x").proposal is None


def test_a_killed_reaccept_of_a_pre_hash_case_keeps_its_files(tmp_path: Path) -> None:
    """The layout before file hashes names ``<case>.png``; a killed re-accept listed them as replaced. The clean-up
    after it must keep them while the old record still names them."""
    root = tmp_path / "store"
    for folder in ("images", "masks", "records"):
        (root / folder).mkdir(parents=True)
    image, labels, _ = _case(1)
    iio.imwrite(root / "images" / "c.png", image)
    iio.imwrite(root / "masks" / "c.png", labels)
    legacy = {"case_id": "c", "source_path": "/x/c.png", "image_sha256": sha256_of(image), "model_version": "v1",
              "fraction_changed": 0.1, "shape": list(SHAPE), "accepted": "2026-01-01T00:00:00+00:00"}
    (root / "records" / "c.json").write_text(json.dumps(legacy))

    assert _accept_in_subprocess(root, seed=2, kill_at=2).returncode == -signal.SIGKILL  # intent written, then killed
    other = _case(3)
    CorrectionsStore(root).add(other[0], other[1], _record("d"))  # finishes the killed accept's clean-up

    old_image, old_mask = read_pair(next(p for p in discover_pairs(root) if p.case_id == "c"))
    np.testing.assert_array_equal(old_image, image)
    np.testing.assert_array_equal(old_mask, labels > 0)


def test_export_proposals_writes_them_beside_the_masks_with_their_records(tmp_path: Path, capsys) -> None:
    store = CorrectionsStore(tmp_path / "store")
    image, labels, proposal = _case(1)
    store.add(image, labels, _record("a"), proposal=ProposalKept(proposal, "base-3", "lung-fields"))
    image_b, labels_b, _ = _case(2)
    store.add(image_b, labels_b, _record("b"))  # accepted before proposals were kept, or without one

    out = tmp_path / "out"
    assert main(["export", "--corrections", str(store.root), "-o", str(out), "--proposals", "--records"]) == 0
    assert "exported 2 cases" in capsys.readouterr().out
    assert _files(out / "proposals") == ["a.png"] and _files(out / "masks") == ["a.png", "b.png"]
    np.testing.assert_array_equal(iio.imread(out / "proposals" / "a.png"), proposal)
    np.testing.assert_array_equal(iio.imread(out / "masks" / "a.png"), labels)
    record = json.loads((out / "records" / "a.json").read_text())
    assert (record["proposal_model_version"], record["proposal_convention"]) == ("base-3", "lung-fields")

    plain = tmp_path / "plain"
    assert main(["export", "--corrections", str(store.root), "-o", str(plain)]) == 0
    assert not (plain / "proposals").exists()  # only when asked


def test_the_widgets_writers_pass_the_proposal_to_the_store(tmp_path: Path) -> None:
    source = tmp_path / "xray.png"
    image, labels, proposal = _case(4)
    iio.imwrite(source, image)
    record = CorrectionRecord("worklist-xray", str(source), "", "ft-2", 0.1)
    write_case(tmp_path / "store", source, labels, record, ProposalKept(proposal, "ft-2", "lung-fields"))
    adhoc = CorrectionRecord("", str(source), "", "ft-2", 0.1)
    case_id, count, _, _ = write_adhoc(tmp_path / "store", image, labels, adhoc, "xray", ProposalKept(labels, "ft-2", "lung-fields"))

    store = CorrectionsStore(tmp_path / "store")
    assert count == 2
    np.testing.assert_array_equal(iio.imread(store.case("worklist-xray").proposal), proposal)
    np.testing.assert_array_equal(iio.imread(store.case(case_id).proposal), labels)  # accepted unedited
