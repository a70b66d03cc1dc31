"""A fine-tune trains on a snapshot while a reviewer keeps re-accepting (issue 31, item 2).

Before: a fine-tune read the live store, and a re-accept meanwhile deleted a file it was about to
read: ``unreadable mask (FileNotFoundError…)`` in 2 of 5 runs against a re-accept loop. After: it
links the accepted cases under the store's lock, trains on them, and its verdict names them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from napari_lung_unet.nn.registry import Registry
from napari_lung_unet.store.corrections import CorrectionsStore
from napari_lung_unet.store.snapshot import SNAPSHOTS, take_snapshot
from training.finetune import FinetuneConfig, finetune

from phantom_models import wider_lungs_store

LOOP = Path(__file__).with_name("reaccept_loop.py")
N = 16


def test_a_fine_tune_amid_a_reaccept_loop_succeeds_on_its_snapshot(base_registry: Registry, tmp_path: Path) -> None:
    store = wider_lungs_store(tmp_path / "corrections", n=N)
    loop = subprocess.Popen([sys.executable, str(LOOP), str(store), str(N)], stdout=subprocess.PIPE, text=True)
    try:
        before = int(loop.stdout.readline())  # a first pass done: the loop is running
        results = [finetune(FinetuneConfig(corrections=str(store), steps=3, batch_size=2, replay=[], device="cpu", max_reference=1))]
        after = int(loop.stdout.readline())
    finally:
        loop.kill()
        loop.wait(timeout=60)
    assert after > before  # re-accepts went on during the fine-tunes
    for result in results:
        assert result.n_train + result.n_holdout == N
        assert re.fullmatch(rf"trained on {result.n_train} cases accepted up to \d\d:\d\d \({result.n_holdout} more held back to check it\)",
                            result.snapshot), result.snapshot
        assert any(result.snapshot in line for line in result.summary)
        assert base_registry.card(result.version).training_data[-1] == f"corrections:{store}"  # the live store, by name
    assert not any((store / SNAPSHOTS).iterdir())  # each snapshot removed when its fine-tune ended
    for case_id in CorrectionsStore(store).case_ids():
        CorrectionsStore(store).case(case_id)  # the store itself untouched by the snapshots


def test_a_reaccept_between_listing_and_reading_cannot_kill_the_fine_tune(two_convention_current: str, tmp_path: Path) -> None:
    """The same race made certain: every case is re-accepted with another mask right after the fine-tune
    has listed and split its cases (its "mixed conventions" warning) and before it reads one of them."""
    from scipy.ndimage import grey_dilation

    from napari_lung_unet.images.phantom import make_phantom
    from napari_lung_unet.store.corrections import CorrectionRecord

    store = CorrectionsStore(tmp_path / "corrections")
    conventions = ["lung-fields", "whole-lung"] * 3

    def accept_all(size: int) -> None:
        for i, convention in enumerate(conventions):
            image, labels = make_phantom((96, 96), seed=30 + i)
            store.add(image, grey_dilation(labels, size=(size, size)),
                      CorrectionRecord(f"case{i}", f"/x/case{i}.png", "0" * 64, "tiny2", 0.1, convention=convention))

    accept_all(5)
    reaccepted = []

    def progress(event: dict) -> None:
        if event.get("message", "").startswith("warning: your corrections mix conventions") and not reaccepted:
            accept_all(9)  # a reviewer re-accepts every case: each accept deletes the mask file it replaces
            reaccepted.append(True)

    result = finetune(FinetuneConfig(corrections=str(store.root), steps=2, batch_size=2, replay=[], device="cpu", max_reference=1),
                      progress=progress)
    assert reaccepted and result.n_train + result.n_holdout == len(conventions)
    assert result.snapshot.startswith(f"trained on {result.n_train} cases accepted up to ")


def test_a_snapshot_keeps_what_was_accepted_when_it_was_taken(tmp_path: Path) -> None:
    from napari_lung_unet.images.phantom import make_phantom
    from napari_lung_unet.store.corrections import CorrectionRecord

    store = CorrectionsStore(wider_lungs_store(tmp_path / "corrections", n=2))
    with take_snapshot(store.root) as snap:
        frozen = CorrectionsStore(snap.root)
        mask_before = frozen.case("case0").mask.read_bytes()
        image, labels = make_phantom((96, 96), seed=30)
        store.add(image, labels, CorrectionRecord("case0", "/x/case0.png", "0" * 64, "base", 0.1))  # a re-accept
        store.add(image, labels, CorrectionRecord("case9", "/x/case9.png", "0" * 64, "base", 0.1))  # a new accept
        assert frozen.case("case0").mask.read_bytes() == mask_before  # still the accept it was taken with
        assert frozen.case_ids() == ["case0", "case1"] and snap.n_cases == 2
        assert snap.root.name == "corrections"  # its cases keep the store's name as their dataset
    assert not snap.root.exists()
    assert len(store) == 3


def test_a_dead_fine_tunes_snapshot_is_removed_by_the_next(tmp_path: Path) -> None:
    store = wider_lungs_store(tmp_path / "corrections", n=1)
    code = "import sys; from napari_lung_unet.store.snapshot import take_snapshot; print(take_snapshot(sys.argv[1]).root)"
    left = Path(subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True, check=True).stdout.strip())
    assert left.is_dir()  # its process ended without closing it
    with take_snapshot(store):
        assert not left.parent.exists()
