"""The corrections store touches only its own files, names every case id apart, and keeps the source's pixels
(issue 21 #2 and #7, issue 20 #8): real symlinks, real folders, real files of every kind the readers take."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.images.read import read_xray
from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsError, CorrectionsStore, sha256_of
from training.data import discover_pairs, read_pair

FIXTURE = Path(__file__).parent / "data" / "store_f00d2e6"  # written by the code before these changes


def _image_and_labels(seed: int = 1, shape: tuple[int, int] = (64, 56)) -> tuple[np.ndarray, np.ndarray]:
    return make_phantom(shape, seed=seed, dtype=np.uint8)


def _record(case_id: str, source: str = "/x/c.png") -> CorrectionRecord:
    return CorrectionRecord(case_id, source, "", "v1", 0.1)


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (not following links) with a file's bytes, None for a folder."""
    found: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), folder)] = None
        for name in filenames:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, folder)] = Path(path).read_bytes()
    return found


def _someone_elses_folder(root: Path) -> Path:
    """A folder of the user's own files, including names the store could mistake for its own."""
    outside = root / "home"
    (outside / ".git").mkdir(parents=True)
    (outside / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (outside / ".env").write_text("TOKEN=secret\n")
    (outside / ".bashrc").write_text("alias ll='ls -l'\n")
    (outside / "scan.0123456789abcdef.png").write_bytes(iio.imwrite("<bytes>", _image_and_labels(9)[0], extension=".png"))
    (outside / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (outside / "c.json").write_text("{}")
    return outside


def test_a_symlinked_images_folder_is_refused_and_nothing_outside_is_lost(tmp_path: Path) -> None:
    outside = _someone_elses_folder(tmp_path)
    before = _tree(outside)
    (tmp_path / "store").mkdir()
    os.symlink(outside, tmp_path / "store" / "images")
    image, labels = _image_and_labels()

    with pytest.raises(CorrectionsError, match=r"images is a symbolic link .*replace the link by a folder"):
        CorrectionsStore(tmp_path / "store").add(image, labels, _record("c"))
    assert _tree(outside) == before
    assert not (tmp_path / "store" / "records").exists()  # refused before anything was written


@pytest.mark.parametrize("folder", ["masks", "records", "segs", "proposals"])
def test_any_symlinked_store_folder_is_refused(tmp_path: Path, folder: str) -> None:
    outside = _someone_elses_folder(tmp_path)
    before = _tree(outside)
    (tmp_path / "store").mkdir()
    os.symlink(outside, tmp_path / "store" / folder)
    with pytest.raises(CorrectionsError, match="symbolic link"):
        CorrectionsStore(tmp_path / "store").add(*_image_and_labels(), _record("c"))
    assert _tree(outside) == before


def test_a_dirty_images_folder_keeps_everything_that_is_not_the_stores(tmp_path: Path) -> None:
    store = CorrectionsStore(tmp_path / "store")
    images = store.root / "images"
    images.mkdir(parents=True)
    user = _someone_elses_folder(tmp_path)
    for entry in user.iterdir():  # the same names, now inside the store's own folder
        (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, images / entry.name)
    (images / ".thumbnails").mkdir()  # a file manager's
    (images / ".thumbnails" / "x.png").write_bytes(b"thumb")
    before = _tree(images)

    for seed in (1, 2, 3):  # a first accept, a re-accept that replaces it, and another case
        image, labels = _image_and_labels(seed)
        store.add(image, labels, _record("c" if seed < 3 else "d"))

    after = _tree(images)
    assert {k: v for k, v in after.items() if k in before} == before  # every foreign file and folder, unchanged
    ours = sorted(set(after) - set(before))
    assert ours == sorted([store.case("c").image.name, store.case("d").image.name])  # the replaced accept's file went
    np.testing.assert_array_equal(iio.imread(store.case("c").image), _image_and_labels(2)[0])


def test_a_killed_accept_is_cleaned_up_by_the_next_one_but_only_its_own_files(tmp_path: Path) -> None:
    from test_corrections_store import SHAPE, _accept_in_subprocess

    store = CorrectionsStore(tmp_path / "store")
    image, labels = _image_and_labels(1, SHAPE)
    store.add(image, labels, _record("c"))
    user_file = store.root / "images" / "c.0123456789abcdef.png"  # looks like the store's, was put there by a user
    user_file.write_bytes(b"user")
    # a real process re-accepting c, SIGKILLed at its 3rd rename (intent, image, mask): after its image, before its record
    assert _accept_in_subprocess(store.root, seed=2, kill_at=3).returncode == -signal.SIGKILL
    assert len(list((store.root / "images").iterdir())) == 3  # the committed image, the uncommitted one, the user's

    store.add(*_image_and_labels(3, SHAPE), _record("d"))  # any next accept finishes the killed one's clean-up
    names = sorted(p.name for p in (store.root / "images").iterdir())
    assert names == sorted([store.case("c").image.name, store.case("d").image.name, user_file.name])
    assert user_file.read_bytes() == b"user"
    np.testing.assert_array_equal(iio.imread(store.case("c").image), image)  # the accept before the kill, whole


def test_ids_that_clean_to_one_name_stay_two_cases(tmp_path: Path) -> None:
    store = CorrectionsStore(tmp_path / "store")
    first, second = _image_and_labels(1), _image_and_labels(2)
    store.add(*first, _record("ward a-x", "/a/ward a-x.png"))
    store.add(*second, _record("ward_a-x", "/b/ward_a-x.png"))
    store.add(*second, _record("ward/a-x", "/c/ward.png"))

    assert len(store) == 3
    for case_id, (image, labels) in (("ward a-x", first), ("ward_a-x", second), ("ward/a-x", second)):
        case = store.case(case_id)
        assert case.record.case_id == case_id  # the exact id is kept, reversibly
        np.testing.assert_array_equal(iio.imread(case.image), image)
    assert {store.record(i).case_id for i in store.case_ids()} == {"ward a-x", "ward_a-x", "ward/a-x"}
    assert len(discover_pairs(store.root)) == 3  # what fine-tuning reads


def test_a_store_written_before_these_changes_opens_and_takes_new_accepts(tmp_path: Path) -> None:
    root = Path(shutil.copytree(FIXTURE, tmp_path / "store", ignore=shutil.ignore_patterns("README.txt")))
    store = CorrectionsStore(root)
    assert store.case_ids() == ["ward_a-x", "worklist-case1"]
    pairs = discover_pairs(root)
    for pair in pairs:
        image, mask = read_pair(pair)
        assert image.shape == (48, 40) and mask.any()

    # re-accepting an old case by its old (clean) id replaces it; its old files go, nothing else does
    image, labels = make_phantom((48, 40), seed=5)
    store.add(image, labels.astype(np.uint8), _record("worklist-case1", "/archive/worklist-case1.png"))
    assert store.case_ids() == ["ward_a-x", "worklist-case1"]
    assert sorted(p.name for p in (root / "images").iterdir()) == sorted(
        [store.case("ward_a-x").image.name, store.case("worklist-case1").image.name]
    )
    np.testing.assert_array_equal(iio.imread(store.case("worklist-case1").image), image)

    # "ward a-x" is another id than the old "ward_a-x", even from the same source: two cases, the old one kept
    # (issue 31: it used to replace the first record; the dock's ids now name their source, so no dock
    # ever accepts one case under two ids)
    store.add(image, labels.astype(np.uint8), _record("ward a-x", "/archive/ward a-x.png"))
    assert len(store) == 3 and "ward_a-x" in store.case_ids()
    assert store.case("ward a-x").record.case_id == "ward a-x"
    np.testing.assert_array_equal(iio.imread(store.case("ward_a-x").image), read_pair(pairs[0])[0])


def _sources(folder: Path) -> dict[str, Path]:
    """One source file of every kind the readers take, with pixels no 8-bit PNG could hold."""
    from dicom_files import write_radiograph

    grey16, _ = make_phantom((64, 56), seed=4)  # uint16
    colour = np.stack([grey16 >> 8, (grey16 >> 9).astype(np.uint16), grey16 >> 10], axis=-1).astype(np.uint8)
    paths = {
        "png16": folder / "a.png", "rgb": folder / "b.png", "float_tiff": folder / "c.tif",
        "int16_tiff": folder / "d.tif", "jpeg": folder / "e.jpg", "dicom": folder / "f.dcm",
    }
    iio.imwrite(paths["png16"], grey16)
    iio.imwrite(paths["rgb"], colour)
    tifffile.imwrite(paths["float_tiff"], grey16.astype(np.float32) / 3.7)
    tifffile.imwrite(paths["int16_tiff"], grey16.astype(np.int32).astype(np.int16) - 1000)
    iio.imwrite(paths["jpeg"], colour[..., 0])
    write_radiograph(paths["dicom"], (grey16 >> 8).astype(np.uint8))
    return paths


def test_the_store_keeps_the_source_pixels_as_read_for_every_kind_of_source(tmp_path: Path) -> None:
    from napari_lung_unet.images.read import read_source_pixels  # new with this test: the rest runs on older code

    (tmp_path / "src").mkdir()
    store = CorrectionsStore(tmp_path / "store")
    for kind, path in _sources(tmp_path / "src").items():
        raw = read_source_pixels(path)
        labels = np.zeros(read_xray(path).pixels.shape, np.uint8)
        labels[8:30, 6:24] = 1
        record = _record(kind, str(path))
        store.add(path, labels, record)
        case = store.case(kind)
        stored = read_source_pixels(case.image)
        assert stored.dtype == raw.dtype and np.array_equal(stored, raw), kind  # the pixels as read, not a rescaled copy
        assert record.image_sha256 == sha256_of(raw) == case.record.image_sha256, kind
        if kind == "dicom":  # the DICOM file itself: pixels, LUTs, spacing and UIDs as the archive sent them
            assert case.image.read_bytes() == path.read_bytes()
        # the one transform at use: what fine-tuning reads is what a proposal reads from the source
        np.testing.assert_array_equal(read_xray(case.image).pixels, read_xray(path).pixels)


def test_pixels_with_no_file_are_kept_exactly_and_hashed_as_given(tmp_path: Path) -> None:
    from napari_lung_unet.images.read import read_source_pixels

    store = CorrectionsStore(tmp_path / "store")
    pixels = make_phantom((64, 56), seed=4)[0].astype(np.float32) / 3.0  # a napari layer made in Python
    labels = np.zeros(pixels.shape, np.uint8)
    labels[5:20, 5:20] = 2
    record = _record("napari layer 'x'", "napari layer 'x'")
    store.add(pixels, labels, record)
    case = store.case("napari layer 'x'")
    np.testing.assert_array_equal(read_source_pixels(case.image), pixels)  # not stretched to uint16
    assert record.image_sha256 == sha256_of(pixels)


def test_a_worklist_accept_and_a_single_image_accept_store_the_same_pixels(tmp_path: Path) -> None:
    """Both widget paths pass the source file's path: one representation, whatever opened the image."""
    source = tmp_path / "xray.png"
    iio.imwrite(source, make_phantom((64, 56), seed=6)[0])
    labels = np.zeros((64, 56), np.uint8)
    labels[10:30, 10:30] = 1
    store = CorrectionsStore(tmp_path / "store")
    store.add(source, labels, _record("worklist-xray", str(source)))
    store.add(source, labels, _record("xray-0123456789ab", str(source)))
    worklist, single = store.case("worklist-xray"), store.case("xray-0123456789ab")
    assert worklist.image.read_bytes() == single.image.read_bytes()
    assert worklist.record.image_sha256 == single.record.image_sha256 == sha256_of(iio.imread(source))


def test_two_processes_accepting_the_same_case_leave_one_whole_case_and_no_leftovers(tmp_path: Path) -> None:
    """Issue 21's probe, kept: the store's lock orders them; whichever commits last wins, whole."""
    import subprocess
    import sys
    import textwrap

    root = tmp_path / "store"
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsStore
        from napari_lung_unet.images.phantom import make_phantom
        first = int(sys.argv[1])
        for seed in range(first, first + 8):
            image, labels = make_phantom((64, 56), seed=seed, dtype=np.uint8)
            CorrectionsStore({str(root)!r}).add(image, labels, CorrectionRecord("c", f"/x/{{seed}}.png", "", "v1", 0.1))
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(first)]) for first in (100, 200)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]

    store = CorrectionsStore(root)
    case = store.case("c")  # checked against its record
    seed = int(Path(case.record.source_path).stem)
    image, labels = _image_and_labels(seed)
    np.testing.assert_array_equal(iio.imread(case.image), image)
    np.testing.assert_array_equal(iio.imread(case.mask), labels)
    for folder in ("images", "masks", "records"):
        assert len(list((root / folder).iterdir())) == 1
    assert not list((root / ".pending").iterdir())
