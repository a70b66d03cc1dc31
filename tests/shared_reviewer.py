"""One reviewer's dock, without a screen: accepts a range of a worklist's cases the way the dock does.

Run as a process (tests/test_shared_folder.py, bench/shared_folder.py)::

    python tests/shared_reviewer.py FOLDER STORE START STOP STEP

It waits for a line on stdin (so two reviewers start together), then for each case: selects it,
records a proposal, queues the draft, writes the accepted case with the dock's own ``write_case`` on
the dock's own :class:`DiskWriter`, and sets the status to accepted as the dock's ``_on_accepted``
does, each state change saved through the writer exactly as ``DockState.save_worklist`` does.
Prints ``done N`` at the end.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(argv: list[str]) -> int:
    folder, store = Path(argv[0]), Path(argv[1])
    start, stop, step = (int(a) for a in argv[2:5])
    import numpy as np
    from qtpy.QtCore import QCoreApplication

    from napari_lung_unet.store.corrections import CorrectionRecord, safe_case_id
    from napari_lung_unet.store.worklist import ACCEPTED, Worklist
    from napari_lung_unet.widget.accepting import write_case
    from napari_lung_unet.widget.writer import DiskWriter

    app = QCoreApplication.instance() or QCoreApplication([])  # noqa: F841 - the writer is a QObject
    worklist = Worklist(folder)
    writer = DiskWriter()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()  # the go signal: both reviewers start together
    began = time.perf_counter()
    done = 0
    for index in range(start, stop, step):
        case = worklist.cases[index]
        worklist.set_current(index, save=False)  # DockState.select_case
        writer.save_state(worklist)
        worklist.record_proposal(case, f"reviewer-{os.getpid()}", 0.9, "lung-fields")  # DockState.record_proposal
        writer.save_state(worklist)
        import imageio.v3 as iio

        labels = np.zeros(iio.imread(case.path).shape[:2], np.uint8)
        labels[2:-2, 2: labels.shape[1] // 2] = 1
        labels[2:-2, labels.shape[1] // 2 + 1: -2] = 2
        record = CorrectionRecord(  # as widget/decide.py builds it
            case_id=safe_case_id(f"{worklist.folder.name}-{case.case_id}"), source_path=str(case.path.resolve()),
            image_sha256="", model_version=case.model_version or "none", fraction_changed=0.0, convention="lung-fields",
        )
        writer.save_mask(worklist.draft_path(case.case_id), labels)
        if writer.submit(write_case, store, case.path, labels, record).result() is None:
            # the writer reports errors through Qt, which has no event loop here: say it plainly
            write_case(store, case.path, labels, record)
            raise SystemExit("write_case failed on the writer but not again here")
        worklist.set_status(case, ACCEPTED, save=False)  # DockState.set_status, from _on_accepted
        writer.save_state(worklist)
        done += 1
    writer.wait()
    writer.shutdown()
    print(f"done {done} in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
