"""A reviewer who keeps re-accepting a store's phantom cases with a changed mask, until killed.

Run as a process (tests/test_finetune_snapshot.py)::

    python tests/reaccept_loop.py STORE N

Every re-accept writes a new mask file and deletes the one it replaces, which is what made a
fine-tune reading the live store die with FileNotFoundError. Prints the number of re-accepts after
each pass over the N cases (``case0`` … as phantom_models.wider_lungs_store names them).
"""

from __future__ import annotations

import sys
from pathlib import Path

from scipy.ndimage import grey_dilation

from napari_lung_unet.images.phantom import make_phantom
from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsStore


def main(store_dir: str, n: int) -> None:
    store = CorrectionsStore(Path(store_dir))
    cases = [make_phantom((96, 96), seed=30 + i) for i in range(n)]
    done = 0
    while True:
        for i, (image, labels) in enumerate(cases):
            size = 5 + 2 * (done % 3)  # another mask each time: a new file, the old one deleted
            store.add(image, grey_dilation(labels, size=(size, size)), CorrectionRecord(f"case{i}", f"/x/case{i}.png", "0" * 64, "base", 0.1))
            done += 1
        print(done, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
