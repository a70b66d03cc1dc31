"""The fine-tune result in plain words: a verdict in one line, then what it trained on, what it was
checked against, and why (the panel shows those under a fold).

The verdict names the first check that failed, in a clinician's words and with its numbers
("Not promoted: your held-out corrections got worse (0.963 → 0.927)"); KL divergences, nats per
pixel and Fisher information stay in the details. The engine's ``--json-progress`` "done" event carries a ``FinetuneResult`` dict. Newer engines
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


# The gate promotes only a candidate whose held-out corrections gained more than their noise
# (training/gain_test.py); these lines are this module's, the rest of the panel's words are in strings.
NO_GAIN = "No measurable gain on your cases: kept {parent}"
ACCEPT_MORE = ". Accept {more} more cases to measure a smaller gain"
PROMOTED_EARLIER_RULE = ("Promoted by an earlier rule, with no measurable gain on your held-out corrections "
                         "({before:.3f} → {after:.3f})")


def verdict(result: dict[str, Any]) -> str:
    """The one line shown first: promoted or not, and the plainest reason, with its numbers. A
    promotion always gained: "Promoted" never stands next to held-out numbers that fell."""
    status = result_status(result)
    checks = [c for c in result.get("checks") or [] if isinstance(c, dict)]
    held = next((c for c in checks if c.get("kind") == "holdout"), None) or _holdout_from_numbers(result)
    if status == PROMOTED:
        by_hand = str(result.get("reason", "")).startswith("promoted on your")
        line = strings.VERDICT_PROMOTED_BY_YOU if by_hand else strings.VERDICT_PROMOTED
        if not held or held.get("before") is None:
            return line
        if held["after"] <= held["before"]:  # a result from before the gain test: say what it was
            return PROMOTED_EARLIER_RULE.format(**held)
        return line + strings.VERDICT_HELD.format(**held)
    if status == UNVERIFIED:
        return strings.VERDICT_UNVERIFIED
    failed = next((c for c in checks if c.get("passed") is False), None)
    if failed is None and not checks and held is not None and held["after"] <= held["before"]:
        failed = held  # an older result: numbers but no checks
    if failed is None:  # e.g. the current model changed while it trained
        reason = str(result.get("reason", "")).removeprefix("not promoted: ").rstrip(".")
        return strings.VERDICT_REJECTED.format(why=reason)
    if failed.get("kind") == "holdout" and "worse" in failed and not failed["worse"]:
        more = failed.get("more_cases")
        return NO_GAIN.format(parent=result.get("parent") or "the current model") + (ACCEPT_MORE.format(more=more) if more else "")
    return strings.VERDICT_REJECTED.format(why=_why(failed))


def _why(check: dict[str, Any]) -> str:
    before, after, kind = check.get("before"), check.get("after"), check.get("kind")
    if kind == "holdout":
        worse = before is not None and after < before
        return (strings.WHY_HELD_WORSE if worse else strings.WHY_HELD_SAME).format(before=before, after=after)
    if kind == "base" and before is not None:
        return strings.WHY_BASE.format(name=check.get("name", ""), before=before, after=after)
    if kind == "estimate":
        return strings.WHY_ESTIMATE
    if kind == "agreement":
        return strings.WHY_AGREEMENT.format(after=after)
    numbers = f"{before:.3f} → {after:.3f}" if before is not None else f"{after:.3g}"
    return strings.WHY_OTHER.format(name=check.get("name", "a check"), numbers=numbers)


def _holdout_from_numbers(result: dict[str, Any]) -> dict[str, Any] | None:
    before, after = result.get("before", {}).get(_HOLDOUT), result.get("after", {}).get(_HOLDOUT)
    if before is None or after is None:
        return None
    return {"kind": "holdout", "before": before, "after": after, "passed": after > before}


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
