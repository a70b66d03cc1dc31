"""One case's life in the dock, as an explicit state machine (issue 33).

    opening ──► proposing ──► shown ──► edited ──► accepting ──► accepted
                                 └──► skipped

Each case that opens gets a new *token*; each change of a mask bumps that image's *generation*.
Every asynchronous result (a proposal, a refine) carries the token and generation it was computed
for, and one whose token or generation is stale is dropped (and logged) instead of being written
into whatever the screen shows by the time it returns. The *convention* is the one the mask on
screen was drawn in: a proposal sets it, edits keep it, and a record says it.

Plain Python, no Qt: :class:`.dock_state.DockState` owns one and changes it through these methods.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger("napari_lung_unet.review")

OPENING = "opening"  # its file is being read
PROPOSING = "proposing"  # shown without a mask yet: the model is drawing one
SHOWN = "shown"  # its mask (a proposal or a draft) is on screen, as the model drew it
EDITED = "edited"  # the clinician changed the mask
ACCEPTING = "accepting"  # Accept was pressed: the store is writing it
ACCEPTED = "accepted"
SKIPPED = "skipped"
PHASES = (OPENING, PROPOSING, SHOWN, EDITED, ACCEPTING, ACCEPTED, SKIPPED)
# Accept acts only on a case whose mask has been shown; one accepted or skipped (still on screen at the
# end of a worklist, or opened again) may be accepted again: it replaces its own stored case
ACCEPTABLE = (SHOWN, EDITED, ACCEPTING, ACCEPTED, SKIPPED)


@dataclass
class CaseLife:
    token: int = 0
    case_id: str | None = None
    phase: str = OPENING
    generations: dict[str, int] = field(default_factory=dict)  # image unique_id -> mask generation
    drawn_in: dict[str, str] = field(default_factory=dict)  # image unique_id -> the mask's convention

    def open(self, case_id: str) -> int:
        """A new case opens (in the same reused layers): a new token, nothing of the last case is current."""
        self.token += 1
        self.case_id, self.phase = case_id, OPENING
        log.debug("case %s opening (token %d)", case_id, self.token)
        return self.token

    def move(self, phase: str) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown case phase {phase!r}")
        if phase != self.phase:
            log.debug("case %s: %s -> %s", self.case_id, self.phase, phase)
            self.phase = phase

    def can_accept(self) -> bool:
        return self.phase in ACCEPTABLE

    # -- masks -----------------------------------------------------------------------------
    def generation(self, image_id: str) -> int:
        return self.generations.get(image_id, 0)

    def bump(self, image_id: str) -> int:
        """The mask of ``image_id`` changed (an edit, a proposal written, a refine)."""
        self.generations[image_id] = self.generation(image_id) + 1
        return self.generations[image_id]

    def stale(self, what: str, token: int | None, image_id: str, generation: int) -> bool:
        """Whether a result computed for (``token``, ``generation``) no longer fits the screen; logs why."""
        if token is not None and token != self.token:
            log.info("%s dropped: it was for an earlier case (token %d, now %d)", what, token, self.token)
            return True
        if generation != self.generation(image_id):
            log.info("%s dropped: the mask changed while it ran (generation %d, now %d)",
                     what, generation, self.generation(image_id))
            return True
        return False

    def set_drawn_in(self, image_id: str, convention: str | None) -> None:
        if convention:
            self.drawn_in[image_id] = convention
        else:
            self.drawn_in.pop(image_id, None)
