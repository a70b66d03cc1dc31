"""Two reviewers on one shared folder, 200 accepts each (issue 31, item 1): is any status, record or case lost?

Two real processes run the dock's accept path (tests/shared_reviewer.py: the dock's DiskWriter and
write_case, the worklist API) on one folder of 300 X-rays: one accepts cases 0-199 in order, the
other 299-100 backwards, so 100 cases are accepted by both. Then a fresh Worklist and the raw
worklist.json are counted, and every stored case is checked against its record.

    nice -n 5 python bench/shared_folder.py [--cases 300 --each 200] [--code /path/to/another/checkout]

``--code`` runs the reviewers with another checkout's package first on PYTHONPATH (the "before").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np

REVIEWER = Path(__file__).resolve().parents[1] / "tests" / "shared_reviewer.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--each", type=int, default=200)
    parser.add_argument("--code", help="another checkout to run the reviewers with (PYTHONPATH first)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="shared_folder_"))
    folder, store = tmp / "ward", tmp / "store"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(args.cases):
        iio.imwrite(folder / f"x{i:03d}.png", rng.integers(0, 255, (40, 36), dtype=np.uint8))
    env = dict(os.environ)
    if args.code:
        env["PYTHONPATH"] = os.pathsep.join([args.code, env.get("PYTHONPATH", "")])
    ranges = [(0, args.each, 1), (args.cases - 1, args.cases - 1 - args.each, -1)]
    procs = [subprocess.Popen([sys.executable, str(REVIEWER), str(folder), str(store), *map(str, r)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for r in ranges]
    for proc in procs:
        proc.stdout.readline()
    start = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outs = [proc.communicate()[0].strip() for proc in procs]
    seconds = time.perf_counter() - start
    # counted by this checkout's reader, whatever wrote the files
    from napari_lung_unet.store.corrections import CorrectionsError, CorrectionsStore
    from napari_lung_unet.store.worklist import Worklist

    counts = Worklist(folder).counts()
    raw = json.loads((folder / ".lung_unet" / "worklist.json").read_text())["cases"]
    raw_counts: dict[str, int] = {}
    for entry in raw.values():
        raw_counts[entry["status"]] = raw_counts.get(entry["status"], 0) + 1
    corrections = CorrectionsStore(store)
    whole = 0
    for case_id in corrections.case_ids():
        try:
            corrections.case(case_id)
            whole += 1
        except CorrectionsError:
            pass
    print(f"reviewers: {outs} ({seconds:.1f} s from the go)")
    print(f"worklist: {counts}")
    print(f"worklist.json: {dict(sorted(raw_counts.items()))}")
    print(f"store: {len(corrections)} records, {whole} whole, of {args.cases} cases")
    lost = args.cases - counts["accepted"]
    print(f"lost statuses: {lost}; lost cases: {args.cases - whole}")


if __name__ == "__main__":
    main()
