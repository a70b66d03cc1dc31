"""The fine-tune result in plain words: what it trained on, what it was checked against, why.

The engine's ``--json-progress`` "done" event carries a ``FinetuneResult`` dict. Newer engines
add ``status`` ("promoted", "rejected", or "unverified": the base data could not be checked, so
the user must say yes) and ``summary`` (plain-English lines); they are shown as they are. For
older results the same story is told here from the numbers (``n_train``, ``before``/``after``).
"""

from __future__ import annotations

from typing import Any

from . import strings

PROMOTED, REJECTED, UNVERIFIED = "promoted", "rejected", "unverified"
_HOLDOUT, _BASE, _DATASET_SUFFIX = "holdout_dice", "base_val_dice", "_val_dice"  # "montgomery_val_dice"


def result_status(result: dict[str, Any]) -> str:
    status = result.get("status")
    if status in (PROMOTED, REJECTED, UNVERIFIED):
        return status
    return PROMOTED if result.get("promoted") else REJECTED


def result_lines(result: dict[str, Any]) -> list[str]:
    """The lines the Fine-tune panel shows: the engine's summary, else ones told from the numbers."""
    summary = result.get("summary")
    if isinstance(summary, list) and summary:
        return [str(line) for line in summary]
    before, after = result.get("before", {}), result.get("after", {})
    n_train, n_holdout = int(result.get("n_train", 0)), int(result.get("n_holdout", 0))
    lines = [strings.FT_TRAINED_ON.format(n_train=n_train, n_total=n_train + n_holdout, n_holdout=n_holdout)]
    if _HOLDOUT in before and _HOLDOUT in after:
        lines.append(strings.FT_CHECK_HOLDOUT.format(before=before[_HOLDOUT], after=after[_HOLDOUT]))
    if _BASE in before and _BASE in after:
        lines.append(strings.FT_CHECK_BASE.format(before=before[_BASE], after=after[_BASE]))
        for key in sorted(k for k in after if k.endswith(_DATASET_SUFFIX) and k != _BASE and k in before):
            lines.append(strings.FT_CHECK_DATASET.format(name=key[: -len(_DATASET_SUFFIX)], before=before[key], after=after[key]))
    else:
        lines.append(strings.FT_NO_BASE)
    template = {PROMOTED: strings.FT_PROMOTED, REJECTED: strings.FT_REJECTED, UNVERIFIED: strings.FT_UNVERIFIED}
    reason = str(result.get("reason", "")).rstrip(".")
    lines.append(template[result_status(result)].format(version=result.get("version", "?"), reason=reason))
    return lines
