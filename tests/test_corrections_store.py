"""The corrections store keeps each case whole: real SIGKILLs at every rename of a re-accept,
tampered and garbled files, and masks that are not label images (issue 12)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_lung_unet.cli.export import export_store
from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsError, CorrectionsStore, sha256_of
from napari_lung_unet.images.masks import MaskError
from napari_lung_unet.images.phantom import make_phantom
from training.data import discover_pairs, read_pair

SHAPE = (96, 80)  # both accepts share it, so no shape check can tell their files apart


def _case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return make_phantom(SHAPE, seed=seed, dtype=np.uint8)


def _record(image: np.ndarray) -> CorrectionRecord:
    return CorrectionRecord("c", "/x/c.png", sha256_of(image), "v1", 0.1)


def kill_at_rename(n: int) -> None:
    """In a child process: SIGKILL it at its ``n``-th atomic rename (the store's files are published by renames)."""
    from napari_lung_unet.store import atomic

    calls = 0

    def kill(tmp: Path, target: Path) -> None:
        nonlocal calls
        calls += 1
        if calls == n:
            os.kill(os.getpid(), signal.SIGKILL)

    atomic.before_replace = kill


def _accept_in_subprocess(store: Path, seed: int, kill_at: int) -> subprocess.CompletedProcess:
    """Re-accept case c with phantom ``seed``; SIGKILL the process at its ``kill_at``-th atomic rename."""
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_corrections_store import kill_at_rename
        from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsStore, sha256_of
        from napari_lung_unet.images.phantom import make_phantom

        kill_at_rename({kill_at})
        image, labels = make_phantom({SHAPE}, seed={seed}, dtype=np.uint8)
        CorrectionsStore({str(store)!r}).add(image, labels, CorrectionRecord("c", "/x/c.png", sha256_of(image), "v1", 0.1))
        """
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy(), timeout=120)


@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_killed_reaccept_leaves_one_whole_case(tmp_path: Path, kill_at: int) -> None:
    store = CorrectionsStore(tmp_path / "store")
    old_image, old_labels = _case(1)
    new_image, new_labels = _case(2)
    store.add(old_image, old_labels, _record(old_image))

    result = _accept_in_subprocess(store.root, seed=2, kill_at=kill_at)
    assert result.returncode == -signal.SIGKILL, result.stderr

    (pair,) = discover_pairs(store.root)  # what fine-tuning reads
    image, mask = read_pair(pair)
    if np.array_equal(image, old_image):
        np.testing.assert_array_equal(mask, old_labels > 0)
    else:  # the kill came after the commit: the new accept, whole
        np.testing.assert_array_equal(image, new_image)
        np.testing.assert_array_equal(mask, new_labels > 0)

    # the next accept removes what the killed one left (temp files, uncommitted files)
    store.add(old_image, old_labels, _record(old_image))
    for folder in ("images", "masks", "records"):
        assert len(list((store.root / folder).iterdir())) == 1, sorted(p.name for p in (store.root / folder).iterdir())


def test_reaccept_replaces_the_case_whole(tmp_path: Path) -> None:
    store = CorrectionsStore(tmp_path / "store")
    for seed in (1, 2):
        image, labels = _case(seed)
        store.add(image, labels, _record(image))
    assert store.case_ids() == ["c"]
    np.testing.assert_array_equal(iio.imread(store.image_path("c")), image)
    np.testing.assert_array_equal(iio.imread(store.mask_path("c")), labels)
    assert [len(list((store.root / f).iterdir())) for f in ("images", "masks", "records")] == [1, 1, 1]


def test_tampered_mask_is_refused_by_name_and_finetune_refuses(tmp_path: Path) -> None:
    from training.finetune import FinetuneConfig, finetune

    store = CorrectionsStore(tmp_path / "store")
    for seed, case_id in ((1, "a"), (2, "c")):
        image, labels = _case(seed)
        store.add(image, labels, CorrectionRecord(case_id, "", sha256_of(image), "v1", 0.1))
    other = iio.imread(store.mask_path("a"))
    iio.imwrite(store.mask_path("c"), other)  # a mask from another case, in place
    with pytest.raises(CorrectionsError, match=r"case c: .*masks/c\..*does not match its record"):
        discover_pairs(store.root)
    with pytest.raises(CorrectionsError, match="case c"):
        finetune(FinetuneConfig(corrections=str(store.root), steps=1))


def test_legacy_store_with_mixed_case_is_refused(tmp_path: Path) -> None:
    # the layout before issue 12, as the crash left it: the new image, the old mask and record
    root = tmp_path / "legacy"
    for folder in ("images", "masks", "records"):
        (root / folder).mkdir(parents=True)
    old_image, old_labels = _case(1)
    iio.imwrite(root / "images" / "c.png", old_image)
    iio.imwrite(root / "masks" / "c.png", old_labels)
    legacy = {"case_id": "c", "source_path": "/x/c.png", "image_sha256": sha256_of(old_image), "model_version": "v1",
              "fraction_changed": 0.1, "shape": list(SHAPE), "accepted": "2026-01-01T00:00:00+00:00"}
    (root / "records" / "c.json").write_text(json.dumps(legacy))
    assert [p.case_id for p in discover_pairs(root)] == ["c"]  # an intact legacy case still reads

    iio.imwrite(root / "images" / "c.png", _case(2)[0])
    with pytest.raises(CorrectionsError, match=r"case c: .*images/c\.png is not the image its record was accepted with"):
        discover_pairs(root)


@pytest.mark.parametrize(
    "record_text",
    [b"{ garbled", b"\xff\xfe\x00", b"[1, 2]", json.dumps({"case_id": "c"}).encode(),
     json.dumps({"case_id": "c", "source_path": "", "image_sha256": "", "model_version": "v", "fraction_changed": "x"}).encode()],
)
def test_garbled_record_is_named_and_export_copies_nothing(tmp_path: Path, record_text: bytes) -> None:
    store = CorrectionsStore(tmp_path / "store")
    image, labels = _case(1)
    store.add(image, labels, _record(image))
    store.record_path("c").write_bytes(record_text)

    with pytest.raises(CorrectionsError, match=r"case c: (garbled|unreadable) record .*records/c\.json"):
        store.record("c")
    out = tmp_path / "out"
    with pytest.raises(CorrectionsError, match=r"records/c\.json") as refused:
        export_store(store.root, out, records=True)
    assert "\n" not in str(refused.value)  # the CLI prints it as one line
    assert not out.exists()  # nothing copied, garbage included


def test_record_naming_a_file_outside_the_store_is_refused(tmp_path: Path) -> None:
    store = CorrectionsStore(tmp_path / "store")
    image, labels = _case(1)
    store.add(image, labels, _record(image))
    secret = tmp_path / "secret.png"
    iio.imwrite(secret, image)
    record = json.loads(store.record_path("c").read_text())
    record["image_file"] = "../../secret.png"
    record["image_file_sha256"] = hashlib.sha256(secret.read_bytes()).hexdigest()
    store.record_path("c").write_text(json.dumps(record))
    with pytest.raises(CorrectionsError, match="names an invalid images file"):
        store.case("c")


@pytest.mark.parametrize(
    "labels, message",
    [
        (lambda l: l * 100, "mask values 0, 100, 200 are not the labels 0/1/2"),
        (lambda l: np.dstack([l, l, l * 0]), "mask is colour"),
        (lambda l: l[:-1], "mask is 95×80 but its image is 96×80"),
        (lambda l: l.astype(np.float32), "mask values are float32"),
        (lambda l: l.astype(np.uint16) * 300, "mask values 0, 300, 600 are not the labels 0/1/2"),
    ],
)
def test_add_refuses_a_bad_mask_and_writes_nothing(tmp_path: Path, labels, message: str) -> None:
    store = CorrectionsStore(tmp_path / "store")
    image, good = _case(1)
    with pytest.raises(MaskError, match=f"case c: {message}"):
        store.add(image, labels(good), _record(image))
    assert not store.root.exists()
