"""expected_dice candidates side by side on the bundled model's validation split (issue 29).

    python bench/quality_candidates.py [--model DIR] [--write-card] [--no-record]

Every validation case of montgomery, shenzhen and covid_v7labs (the model's own split, each case in
the convention its mask is drawn in) is predicted once; outputs are cached (bench/_quality_cache.py).
Each learned candidate is scored by leave-one-out (every case's estimate from a fit without it),
plus a two-fold check of (a) (fit on one half by case-id hash, score the other).
Candidates:

- retired ``confidence``: mean |2p − 1| over the band the old formula used, as it was (no fit);
- soft self-Dice: the Dice if the network's probabilities were right (no fit; the uncalibrated fallback);
- (a) learned, cheap: nn/quality.py's features of the one probability the product already has, fitted
  on the validation split (leave-one-out), and (a, train) its slopes fitted on the training split's 506
  cases (their Dice reads optimistic: the network saw them), its intercept on the validation split
  (leave-one-out): the chosen one;
- (a+) learned, plus flip agreement and the two conventions' disagreement (two more decoder passes);
- (b) atlas RCA: the mask, normalised to its lungs' bounding box, against the shipped CC BY reference
  masks of the same convention (napari_lung_unet/reference/); the best Dice, calibrated by a fit;
- (c) shape plausibility: solidity (mean and worst lung), lungs' area ratio, area, component count;
- (d) (a)'s features, slopes fitted on out-of-sample errors: the leave-one-site-out models (cache/site-base,
  when present) on every case of the site each never saw (realistic errors, unlike the training split's);
- (e) (a)'s features plus ten more of the same map (bench/_quality_extra.py), and (d+e) both.

``--write-card`` stores (a, train), its intercept from every validation case, in the model folder's card.json (``quality``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quality_cache import validation_outputs  # noqa: E402
from _quality_extra import EXTRA_NAMES, atlas, boxed, extra_features, shape
from _quality_extra import dice as overlap  # noqa: E402
from _report import publish  # noqa: E402

from napari_lung_unet.images.conventions import WHOLE_LUNG  # noqa: E402
from napari_lung_unet.nn.card import CARD_NAME, ModelCard  # noqa: E402
from napari_lung_unet.nn.model_io import load_model  # noqa: E402
from napari_lung_unet.nn.postprocess import clean_mask  # noqa: E402
from napari_lung_unet.nn.quality import FEATURE_NAMES, feature_vector, quality_features  # noqa: E402
from napari_lung_unet.settings import bundled_model_dir  # noqa: E402
from napari_lung_unet.store.atomic import atomic_write_json  # noqa: E402
from training.quality_fit import (  # noqa: E402
    BAD_BELOW, fit, flag_costs, leave_one_out, leave_one_out_intercept, predict, scores, slopes_from, with_intercept_from,
)

def _retired_confidence(p: np.ndarray) -> float:
    band = (p > 0.05) & (p < 0.95) | (p > 0.5)
    return float(np.abs(2.0 * p[band] - 1.0).mean()) if band.any() else 0.0


SITES = ("covid_v7labs", "shenzhen")
SITE_BASE = Path(__file__).resolve().parents[1] / "cache" / "site-base"  # git-ignored bench weights


def _half(case_id: str) -> bool:
    return int(hashlib.sha1(case_id.encode()).hexdigest()[:8], 16) % 2 == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(bundled_model_dir()))
    ap.add_argument("--write-card", action="store_true", help="store the chosen estimator in the model's card.json")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    loaded = load_model(args.model)
    card = loaded.card
    data = validation_outputs(loaded)
    dice, conv, n = data["dice"].astype(np.float64), data["convention"], len(data["dice"])
    references = atlas()
    names = list(FEATURE_NAMES)
    cheap, retired, self_dice, extra, rca, shapes, richer = [], [], [], [], [], [], []
    for i in range(n):
        p = data["prob"][i].astype(np.float32)
        values = quality_features(p, str(conv[i]), card.threshold)
        cheap.append(feature_vector(values, names))
        retired.append(_retired_confidence(p))
        self_dice.append(values["self_dice"])
        mask = clean_mask(p > card.threshold)
        extra.append([overlap(mask > 0, data["flip"][i] > 0.5), overlap(p > 0.5, data["other"][i] > 0.5)])
        rca.append([max(overlap(boxed(mask > 0), ref) for ref in references[str(conv[i])]), float(conv[i] == WHOLE_LUNG)])
        shapes.append(shape(mask))
        richer.append(extra_features(p, str(conv[i]), references))
    x = np.array(cheap)
    train = validation_outputs(loaded, split="train")
    x_train = np.array([feature_vector(quality_features(p.astype(np.float32), str(c), card.threshold), names)
                        for p, c in zip(train["prob"], train["convention"])])
    slopes = fit(x_train, train["dice"].astype(np.float64), names, card.version)
    train_richer = np.array([extra_features(p.astype(np.float32), str(c), references) for p, c in zip(train["prob"], train["convention"])])
    # out-of-sample errors: each leave-one-site-out model (scripts/train_site_base.sh) on every case of the site it never saw
    site_x, site_richer, site_dice = [], [], []
    for site in SITES:
        folder = SITE_BASE / site / "stage3" / "best"
        if not folder.is_dir():
            continue
        out = validation_outputs(load_model(folder), split="all", datasets=(site,))
        for p, c in zip(out["prob"], out["convention"]):
            site_x.append(feature_vector(quality_features(p.astype(np.float32), str(c), card.threshold), names))
            site_richer.append(extra_features(p.astype(np.float32), str(c), references))
        site_dice += out["dice"].astype(np.float64).tolist()
    chosen = leave_one_out_intercept(slopes, x, dice)
    val_only = leave_one_out(x, dice)
    rows = [
        ("retired `confidence` (mean \\|2p−1\\| over its band), no fit", np.array(retired), "1 (the network's output)"),
        ("soft self-Dice, no fit (the fallback for uncalibrated cards)", np.array(self_dice), "1"),
        ("(a) learned: unsure mass, area, lungs' ratio, convention; fitted on the validation split", val_only, "1"),
        (f"**(a, train) the same, slopes from the {len(x_train)} training-split cases, level from validation** (chosen)",
         chosen, "1"),
        ("(a+) (a) plus flip agreement and the conventions' disagreement", leave_one_out(
            np.column_stack([x, extra]), dice), "3 (flip, other decoder)"),
        ("(b) atlas RCA vs the 32 CC BY reference masks (bounding-box aligned), calibrated", leave_one_out(
            np.array(rca), dice), "1"),
        ("(c) shape plausibility: solidity ×2, lungs' ratio, area, components", leave_one_out(
            np.array(shapes), dice), "1"),
        (f"(e) (a)'s four plus ten more ({', '.join(EXTRA_NAMES)}), slopes from the training split, level from validation",
         slopes_from(np.column_stack([x_train, train_richer]), train["dice"].astype(np.float64),
                     np.column_stack([x, richer]), dice), "1"),
    ]
    if site_dice:
        site_d = np.array(site_dice)
        rows += [
            (f"(d) (a)'s four, slopes from {len(site_d)} out-of-sample cases (the leave-one-site-out models on the "
             f"site each never saw: {', '.join(SITES)}), level from validation", slopes_from(np.array(site_x), site_d, x, dice), "1"),
            ("(d+e) the fourteen of (e), slopes from the training split and those out-of-sample cases", slopes_from(
                np.vstack([np.column_stack([x_train, train_richer]), np.column_stack([site_x, site_richer])]),
                np.concatenate([train["dice"].astype(np.float64), site_d]), np.column_stack([x, richer]), dice), "1"),
        ]
    bad = int(np.count_nonzero(dice < BAD_BELOW))
    lines = [
        f"Validation split of {card.version} ({n} cases: " + ", ".join(
            f"{d} {np.count_nonzero(data['dataset'] == d)}" for d in dict.fromkeys(data["dataset"])) +
        f"; {bad} with true Dice < {BAD_BELOW}). Learned candidates: leave-one-out over the validation cases "
        f"(a, train: only its intercept is fitted on them). Catch rate: share of the "
        f"{bad} masks below {BAD_BELOW} among the lowest 20 % of the estimate. A constant (the median) has MAE "
        f"{np.abs(dice - np.median(dice)).mean():.4f}.",
        "",
        "| candidate | Spearman | MAE | catch rate | network passes |",
        "|---|---|---|---|---|",
    ]
    for label, estimate, passes in rows:
        s = scores(estimate, dice)
        lines.append(f"| {label} | {s['spearman']:.3f} | {s['mae']:.4f} | {s['catch_rate']:.2f} | {passes} |")
    halves = np.array([_half(str(c)) for c in data["case_id"]])
    two_fold = np.empty(n)
    for side in (True, False):
        two_fold[halves != side] = predict(fit(x[halves == side], dice[halves == side], names, ""), x[halves != side])
    s = scores(two_fold, dice)
    lines += ["", f"(a, train) without its intercept re-fitted (training split only): "
              + ", ".join(f"{k} {v:.4f}" for k, v in scores(predict(slopes, x), dice).items())
              + f"; mean estimate {predict(slopes, x).mean():.4f} against a true {dice.mean():.4f} (optimistic)."]
    lines += ["", f"(a) two-fold instead (fit on one half by case-id hash, scored on the other, both ways): "
              f"Spearman {s['spearman']:.3f}, MAE {s['mae']:.4f}, catch rate {s['catch_rate']:.2f}."]
    for subset in ("lung-fields", "whole-lung"):
        m = conv == subset
        s = scores(chosen[m], dice[m])
        lines.append(f"(a, train) within {subset} ({np.count_nonzero(m)} cases): Spearman {s['spearman']:.3f}, MAE {s['mae']:.4f}.")
    order = np.argsort(chosen)
    lines += ["", "Calibration of (a, train), leave-one-out, by fifths of the estimate:", "",
              "| fifth | cases | mean expected_dice | mean true Dice |", "|---|---|---|---|"]
    for k, part in enumerate(np.array_split(order, 5)):
        lines.append(f"| {k + 1} | {len(part)} | {chosen[part].mean():.4f} | {dice[part].mean():.4f} |")
    lines += ["", f"Flagging (a, train) below D (leave-one-out estimates; 'caught': share of the {bad} masks below {BAD_BELOW}; "
              "'false flags': share of the flagged that were ≥ 0.95):", "",
              "| D | flagged | caught | false flags |", "|---|---|---|---|"]
    for below in (0.93, 0.94, 0.945, 0.95, 0.955, 0.96):
        c = flag_costs(chosen, dice, below)
        lines.append(f"| {below} | {c['flagged']:.0%} | {c['caught']:.0%} | {c['false_flags']:.0%} |")
    publish("expected_dice candidates (bench/quality_candidates.py)", lines, record=not args.no_record)
    if args.write_card:
        s = scores(chosen, dice)
        calibration = with_intercept_from(slopes, x, dice)
        calibration.fitted_on = (
            f"slopes: {card.version}'s training split, {len(x_train)} cases; intercept: its validation split, {n} cases "
            "(montgomery, shenzhen, covid_v7labs, each in its mask's convention); metrics: leave-one-out on validation")
        calibration.metrics = {k: round(v, 4) for k, v in s.items()}
        path = Path(args.model) / CARD_NAME
        raw = ModelCard.read(path).to_dict()
        raw["quality"] = calibration.__dict__ | {"metrics": calibration.metrics}
        ModelCard.from_json(__import__("json").dumps(raw))  # validates before it replaces the card
        atomic_write_json(path, raw)
        print(f"wrote the calibration into {path}")


if __name__ == "__main__":
    main()
