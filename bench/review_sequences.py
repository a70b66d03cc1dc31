"""Random action sequences through the real review loop: how many keep issue 33's invariants.

The same state machine as ``tests/test_review_machine.py`` (``tests/review_machine.py``): a real
napari viewer per sequence, the real dock, a real two-convention tiny U-Net in two registry
versions, worklists whose X-rays share file names across folders, and proposals, refines and
accept writes delayed at random. Each sequence is up to 25 steps; after every step the GUI settles
and the invariants are checked. A sequence that breaks one is counted as failed, its steps and
the broken invariants kept, and the next sequence starts.

Then, with ``--shrink``, each kind of failure found is handed to hypothesis again (that invariant
alone checked) and shrunk to a short reproduction, printed as hypothesis prints it.

Run under a display, niced (the machine is shared)::

    nice -n 5 xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python bench/review_sequences.py --sequences 1000 --shrink
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
STEPS = 25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequences", type=int, default=1000, help="random sequences to run (default 1000)")
    p.add_argument("--steps", type=int, default=STEPS, help="steps per sequence (default 25)")
    p.add_argument("--shrink", action="store_true", help="shrink one failing sequence per kind of failure")
    p.add_argument("--shrink-kinds", default="", help="comma-separated invariants to shrink a failure of, found or not (e.g. no-silent-loss)")
    p.add_argument("--shrink-examples", type=int, default=100, help="sequences hypothesis may try to find each kind again")
    p.add_argument("--minutes", type=float, default=None, help="start no new sequence after this many minutes (the count says how many ran)")
    p.add_argument("--only", default=None, help="check one invariant only (e.g. store-is-what-was-seen; 'none' times the steps alone)")
    return p.parse_args(argv)


def wait_until(condition, seconds: float) -> None:  # noqa: ANN001 - a callable
    """Process Qt events until ``condition()`` holds (pytest-qt's waitUntil, without pytest)."""
    from qtpy.QtTest import QTest

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not settled within {seconds:.0f} s")
        QTest.qWait(5)


def kind_of(problem: str) -> str:
    return problem.split(":", 1)[0]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="review_sequences_"))
    os.environ["LUNG_UNET_HOME"] = str(home / "home")  # its own registry and store, never the user's
    import napari
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.stateful import run_state_machine_as_test

    from phantom_models import train_phantom_parent
    from review_machine import Delays, Env, ReviewMachine, make_wards, two_convention_models

    two_convention_models(train_phantom_parent(home / "parent"))
    template = home / "template"
    delays = Delays()
    def new_viewer():  # noqa: ANN202 - each sequence's machine closes its own at teardown
        return napari.Viewer(show=False)

    env = Env(new_viewer=new_viewer, wait_until=wait_until, home=home / "examples", template=template,
              pixels=make_wards(template), delays=delays)
    ReviewMachine.env = env
    if args.minutes is not None:
        env.deadline = time.monotonic() + 60 * args.minutes

    def progress(steps: int, problems: list[str] | None) -> None:
        print(f"sequence {env.examples}: {steps} steps, " + ("ok" if problems is None else "FAILED " + kind_of(problems[0]) + ": " + "; ".join(problems)), flush=True)

    env.on_sequence = progress
    delays.install()
    failures: list[tuple[list[str], list[str]]] = []
    ReviewMachine.collect = failures
    ReviewMachine.only = args.only
    common = dict(stateful_step_count=args.steps, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    start = time.perf_counter()
    try:
        if args.sequences > 0:
            run_state_machine_as_test(ReviewMachine, settings=settings(max_examples=args.sequences, phases=[Phase.generate], **common))
    finally:
        ReviewMachine.collect = ReviewMachine.only = None
    seconds = time.perf_counter() - start
    ran = env.examples
    kinds = Counter(kind_of(problems[0]) for _steps, problems in failures)
    print(f"{ran - len(failures)} of {ran} sequences (up to {args.steps} steps, {env.steps} in all) kept every invariant; "
          f"{len(failures)} failed; {seconds:.0f} s ({seconds / max(ran, 1):.1f} s per sequence, "
          f"{1000 * seconds / max(env.steps, 1):.0f} ms per step)")
    for kind, n in kinds.most_common():
        print(f"  {kind}: {n}")
    for kind in kinds:
        steps, problems = next((s, p) for s, p in failures if kind_of(p[0]) == kind)
        print(f"\nfirst failing sequence of kind {kind} (unshrunk):\n  " + "\n  ".join(steps) + "\n  -> " + "; ".join(problems))
    env.on_sequence = None  # the progress lines count the bench's own sequences, not hypothesis's shrinking
    shrink = args.shrink_kinds.split(",") if args.shrink_kinds else (list(kinds) if args.shrink else [])
    if shrink:
        for kind in shrink:
            print(f"\n=== shrinking {kind} ===", flush=True)
            env.deadline = None  # a replay that passed for want of time would read as a flaky failure
            ReviewMachine.only = kind
            try:
                run_state_machine_as_test(ReviewMachine, settings=settings(max_examples=args.shrink_examples, **common))
                print("(not found again)")
            except Exception as exc:  # noqa: BLE001 - the shrunk failure is the result; hypothesis printed its steps
                print("\n".join(getattr(exc, "__notes__", [])))  # hypothesis's falsifying sequence
                print(f"-> {type(exc).__name__}: {exc}".splitlines()[0])
            finally:
                ReviewMachine.only = None
    delays.uninstall()
    return 0


if __name__ == "__main__":
    sys.exit(main())
