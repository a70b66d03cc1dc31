"""Two reviewers on one folder (issue 31, item 1): real processes, the dock's own accept and save path.

Before: each dock rewrote ``worklist.json`` from its own copy, so the last writer won (200 accepts
each left 200 accepted, 99 new, 1 proposed). After: every save is a per-case merge under a lock
file, and nothing either reviewer did is lost. bench/shared_folder.py runs the 200-accept version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_lung_unet.store.claims import Claims
from napari_lung_unet.store.corrections import CorrectionsStore
from napari_lung_unet.store.lockfile import LockFile, LockTimeout
from napari_lung_unet.store.worklist import ACCEPTED, Worklist
from napari_lung_unet.store.worklist_file import merge_state

REVIEWER = Path(__file__).with_name("shared_reviewer.py")


def make_folder(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        iio.imwrite(root / f"x{i:03d}.png", rng.integers(0, 255, (40, 36), dtype=np.uint8))
    return root


def run_reviewers(folder: Path, store: Path, ranges: list[tuple[int, int, int]], timeout: float = 300) -> list[str]:
    """Start one reviewer process per range, let them go at once, and return what each printed."""
    procs = [subprocess.Popen([sys.executable, str(REVIEWER), str(folder), str(store), *map(str, r)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in ranges]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    for proc in procs:  # the barrier: neither starts accepting before both are ready
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err[-3000:]
        outs.append(out)
    return outs


def test_two_reviewer_processes_lose_no_status_record_or_case(tmp_path: Path) -> None:
    n, each = 48, 32  # 32 accepts each, 16 cases accepted by both: bench/shared_folder.py does 200 each
    folder, store = make_folder(tmp_path / "ward", n), tmp_path / "store"
    outs = run_reviewers(folder, store, [(0, each, 1), (n - 1, n - 1 - each, -1)])
    assert [o.split()[1] for o in outs] == [str(each), str(each)], outs

    fresh = Worklist(folder)
    assert fresh.load_error is None
    assert fresh.counts()[ACCEPTED] == n, fresh.counts()
    assert all(c.model_version and c.model_version.startswith("reviewer-") and c.convention == "lung-fields" for c in fresh.cases)
    # the file itself, as any reader (an older version, a script) sees it
    saved = json.loads(fresh.state_file.read_text())["cases"]
    assert sorted(saved) == sorted(c.case_id for c in fresh.cases)
    assert {e["status"] for e in saved.values()} == {ACCEPTED}
    corrections = CorrectionsStore(store)
    assert len(corrections) == n
    for case_id in corrections.case_ids():
        corrections.case(case_id)  # every record whole: its image and mask match it


def test_a_stale_copy_never_undoes_a_newer_accept(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ward", 3)
    first, second = Worklist(folder), Worklist(folder)  # two docks opened the folder
    first.set_status(first.cases[0], ACCEPTED)
    second.set_status(second.cases[1], "skipped")  # saves its copy, in which case 0 is still new
    second.save()
    again = Worklist(folder)
    assert [c.status for c in again.cases] == [ACCEPTED, "skipped", "new"]
    assert second.cases[0].status == ACCEPTED  # a save also takes in the other dock's changes
    # a later change of the same case by the other dock wins, whichever dock saves last
    second.set_status(second.cases[0], "edited")
    first.save()
    assert Worklist(folder).cases[0].status == "edited"


def test_refresh_shows_another_docks_accept_and_keeps_an_unsaved_change(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ward", 3)
    mine, theirs = Worklist(folder), Worklist(folder)
    theirs.set_status(theirs.cases[0], ACCEPTED)
    theirs.set_status(theirs.cases[1], ACCEPTED)
    mine.cases[1].status = "skipped"  # changed here, not yet sent
    assert [c.case_id for c in mine.refresh()] == [mine.cases[0].case_id]
    assert [c.status for c in mine.cases] == [ACCEPTED, "skipped", "new"]


def test_settings_merge_too(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ward", 2)
    first, second = Worklist(folder), Worklist(folder)
    first.settings["convention"] = "whole-lung"
    first.save()
    second.set_status(second.cases[0], ACCEPTED)  # its settings are untouched: the file's stay
    assert Worklist(folder).settings == {"convention": "whole-lung"}
    assert second.settings == {"convention": "whole-lung"}


def test_a_dead_holders_lock_file_is_broken_and_a_live_one_waited_for(tmp_path: Path) -> None:
    lock_path = tmp_path / "worklist.lock"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    from napari_lung_unet.store.lockfile import HOST

    lock_path.write_text(json.dumps({"host": HOST, "pid": int(dead.stdout), "token": "x", "lock": "y", "time": 0}))
    with LockFile(lock_path, timeout=2.0):  # the holder's process is gone: broken at once
        assert json.loads(lock_path.read_text())["lock"] != "y"
        with pytest.raises(LockTimeout, match="held by process"):
            LockFile(lock_path, timeout=0.2).acquire()
    assert not lock_path.exists()
    # another machine's lock: broken once watched unchanged for stale_after, whatever its time says
    lock_path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "x", "lock": "z", "time": 0}))
    with pytest.raises(LockTimeout):
        LockFile(lock_path, timeout=0.2, stale_after=60).acquire()
    with LockFile(lock_path, timeout=5.0, stale_after=0.5):  # the watch of the attempt before counts too
        pass
    # one whose holder refreshes it is never broken, however long it is held
    lock_path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "x", "lock": "w", "time": 0}))
    deadline, when = time.monotonic() + 1.5, time.time()
    while time.monotonic() < deadline:
        when += 1
        os.utime(lock_path, (when, when))  # what LockFile.refresh does on the other machine
        with pytest.raises(LockTimeout):
            LockFile(lock_path, timeout=0.1, stale_after=0.6).acquire()
    # and a file ten times older than stale_after by the file server's clock is broken at once
    old = time.time() - 700
    os.utime(lock_path, (old, old))
    with LockFile(lock_path, timeout=1.0, stale_after=60):
        pass


def test_claims_say_who_has_a_case_open_and_lapse(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ward", 2)
    wl = Worklist(folder)
    case = wl.cases[0]
    other = Claims(wl.state_dir, user="bea")
    # another reviewer's process holds the case: written as that process would, from a real other pid
    code = ("import sys, json; from napari_lung_unet.store.claims import Claims; "
            "c = Claims(sys.argv[1], user='bea', ttl=600).claim(sys.argv[2]); print(c.mine)")
    holder = subprocess.Popen([sys.executable, "-c", code + "; sys.stdin.readline()", str(wl.state_dir), case.case_id],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"
        held = wl.claimed_by(case)
        assert held is not None and held.user == "bea" and held.line().startswith("open by bea on ")
        assert " since " in held.line()
        assert not wl.claim(case).mine  # we may look, but the claim stays bea's
        assert wl.claimed_by(wl.cases[1]) is None and wl.claim(wl.cases[1]).mine
        wl.release(case)  # not ours: left alone
        assert wl.claimed_by(case) is not None
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=60)
    # the holder's process ended without releasing: on this machine the claim lapses at once
    assert wl.claimed_by(case) is None and wl.claim(case).mine
    wl.release(case)
    assert other.current(case.case_id) is None
    # a claim past its time lapses too
    short = Claims(wl.state_dir, user="cy", ttl=-1)
    short.claim(case.case_id)
    assert other.current(case.case_id) is None


def test_merge_state_keeps_cases_only_one_dock_knows(tmp_path: Path) -> None:
    path = tmp_path / ".lung_unet" / "worklist.json"
    merge_state(path, {"cases": {"a": {"file": "a.png", "status": "accepted", "extra": {"changed": 5.0}}}})
    merge_state(path, {"cases": {"b": {"file": "b.png", "status": "skipped", "extra": {"changed": 1.0}},
                                 "a": {"file": "a.png", "status": "new", "extra": {"changed": 4.0}}}})
    cases = json.loads(path.read_text())["cases"]
    assert {k: v["status"] for k, v in cases.items()} == {"a": "accepted", "b": "skipped"}
