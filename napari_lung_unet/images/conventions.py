"""The two ways lung masks are drawn on a chest X-ray, and which output of a model draws each.

- ``lung-fields`` (the default): the visible lung fields, following the heart and diaphragm
  contours. Montgomery, most of Shenzhen and JSRT are drawn this way.
- ``whole-lung``: the lung behind the heart and below the domes' contours included. V7 Labs'
  COVID-19 masks and one Shenzhen annotation batch are drawn this way; it is closer to the lung
  volume on CT, which the fields convention underestimates by about a quarter (arXiv 2402.11510).

Both are legitimate; a site picks one. A model that knows both has one output channel per
convention (its card lists them in order); a model that knows one refuses the other by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ConventionName = Literal["lung-fields", "whole-lung"]
LUNG_FIELDS: ConventionName = "lung-fields"
WHOLE_LUNG: ConventionName = "whole-lung"
DEFAULT_CONVENTION: ConventionName = LUNG_FIELDS


@dataclass(frozen=True)
class Convention:
    name: ConventionName
    title: str
    drawn: str  # what the mask covers, in one line a clinician reads in the dock's tooltip
    used_by: str


CONVENTIONS: dict[str, Convention] = {
    LUNG_FIELDS: Convention(
        LUNG_FIELDS, "Lung fields",
        "the visible lung fields: the mask follows the heart and diaphragm contours",
        "Montgomery, most of Shenzhen, JSRT",
    ),
    WHOLE_LUNG: Convention(
        WHOLE_LUNG, "Whole lung",
        "the whole lung: the lung behind the heart and below the domes' contours included",
        "V7 Labs COVID-19 masks, one Shenzhen annotation batch",
    ),
}
NAMES: tuple[str, ...] = tuple(CONVENTIONS)


class ConventionError(ValueError):
    """An unknown convention, or one the model does not know; the message names both."""


def check_convention(name: str) -> ConventionName:
    """``name`` if it is a convention, else a one-line error listing the choices."""
    if name not in CONVENTIONS:
        raise ConventionError(f"unknown lung convention {name!r}; choose {' or '.join(NAMES)}")
    return name  # type: ignore[return-value]


def default_for(known: Sequence[str]) -> ConventionName:
    """The convention a model that knows ``known`` draws when none is asked: lung fields when it
    knows them (the project's default), else its only one (a whole-lung-only model)."""
    return DEFAULT_CONVENTION if DEFAULT_CONVENTION in known or not known else check_convention(known[0])


def output_index(known: Sequence[str], name: str, version: str = "this model") -> int:
    """Which output channel of a model that knows ``known`` (in channel order) draws ``name``."""
    check_convention(name)
    if name not in known:
        raise ConventionError(
            f"model {version} knows only {', '.join(known)}; it cannot propose {name} masks "
            f"(pick a model that knows {name}, e.g. default-3, or switch the convention)"
        )
    return list(known).index(name)
