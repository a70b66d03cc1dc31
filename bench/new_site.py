"""Does the learning loop pay off at a hospital the model has never seen? (issue 32)

    python bench/new_site.py --site covid_v7labs|shenzhen|montgomery [--base DIR] [--upper DIR]
        [--steps 5,10,20,half] [--next N] [--others N] [--finetune-args "--steps 100"] [--label TEXT]
        [--plot docs/payoff.png] [--json FILE] [--no-record]

The starting model never saw the site: ``scripts/train_site_base.sh SITE`` trained it (default:
``$LUNG_UNET_CACHE/site-base/SITE/stage3/best``). It is copied into a fresh ``LUNG_UNET_HOME`` and made
current with ``lung-unet models --rollback``, as a site would. The site's cases, in patient order (the
manifest's ``patientid`` for covid_v7labs, case id elsewhere), only those drawn in the site's convention:

- the *next cases*, scored after every step, are the upper bound's validation split of the site (patients
  neither model trained on; ``--next N`` keeps the first N);
- the corrections are the other cases, accepted in that order: after k = 5, 10, 20 and then half the site
  (``--steps``), ``lung-unet finetune --corrections DIR --convention C --json-progress`` runs in its own
  process with the base data (``LUNG_UNET_DATA``), exactly as the dock runs it. The loop is cumulative, as
  a clinician's is: each fine-tune starts from whatever is current, and trains on every correction so far.

Each row: the current model's Dice on the next cases in the site's convention, the clinician's seconds
per case on them (bench/correction_effort.py, paint mode), the candidate's Dice when it was not promoted,
the other collections' validation Dice (the starting model's split: cases it never trained on), the
verdict and the wall time of the fine-tune. Two reference rows: the starting model, and the upper bound
(a model trained with the site: default-3 for every site here). ``--plot`` draws Dice and seconds per case
against the number of corrections, both references as lines.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish  # noqa: E402
from correction_effort import run_case  # noqa: E402
from finetune_levers import link_subset  # noqa: E402

from napari_lung_unet.images.conventions import DEFAULT_CONVENTION  # noqa: E402
from napari_lung_unet.nn.model_io import LoadedModel, load_model  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.nn.registry import Registry  # noqa: E402
from napari_lung_unet.settings import HOME_ENV, bundled_model_dir, data_dir  # noqa: E402
from training.data import DATASET_CONVENTIONS, Pair, discover_pairs, split_of_run  # noqa: E402
from training.evaluate import LoadedCase, load_cases, mean_dice, score_cases  # noqa: E402
from training.finetune_data import fair_subset  # noqa: E402

SITES = ("covid_v7labs", "shenzhen", "montgomery")
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--site", required=True, choices=SITES)
    ap.add_argument("--base", type=Path, help="the starting model's folder (default: the site-base in the cache)")
    ap.add_argument("--upper", type=Path, default=bundled_model_dir(), help="a model trained with the site (default: the shipped one)")
    ap.add_argument("--steps", default="5,10,20,half", help="corrections accepted before each fine-tune; 'half': half the site")
    ap.add_argument("--next", type=int, default=0, help="score only the first N next cases (0: all)")
    ap.add_argument("--others", type=int, default=48, help="other collections' validation cases scored, at most (0: none)")
    ap.add_argument("--finetune-args", default="", help="extra `lung-unet finetune` options, for a lever")
    ap.add_argument("--label", default="", help="names this run in the table (e.g. the lever)")
    ap.add_argument("--plot", type=Path, help="write the payoff plot here (e.g. docs/payoff.png)")
    ap.add_argument("--json", type=Path, help="write the rows here (the plot can be redrawn from them with --replot)")
    ap.add_argument("--replot", type=Path, help="only redraw --plot from a --json file")
    ap.add_argument("--references", type=Path, help="take the two reference rows from an earlier run's --json (same site and "
                    "--next/--others), instead of scoring them again: for comparing levers")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home (registry) and print where")
    ap.add_argument("--no-record", action="store_true")
    return ap.parse_args(argv)


def cache_dir() -> Path:
    return Path(os.environ.get("LUNG_UNET_CACHE", REPO.parent / "main" / "cache" if not (REPO / "cache").is_dir() else REPO / "cache"))


def site_cases(site: str) -> list[Pair]:
    """The site's cases drawn in its convention, in the order a site would see them: by patient."""
    convention = DATASET_CONVENTIONS.get(site, DEFAULT_CONVENTION)
    root = data_dir() / site
    pairs = [p for p in discover_pairs(root) if p.convention == convention]
    patients = _patient_ids(root / "manifest.csv")
    if patients:
        return sorted(pairs, key=lambda p: (_number(patients.get(p.case_id, "")), p.case_id))
    return sorted(pairs, key=lambda p: p.case_id)


def _patient_ids(manifest: Path) -> dict[str, str]:
    if not manifest.is_file():
        return {}
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {r["case_id"]: r["patientid"] for r in rows if r.get("patientid")}


def _number(text: str) -> tuple[float, str]:
    """Patient ids sort as numbers where they are numbers (2 before 10), the others after, by text."""
    try:
        return float(text), ""
    except ValueError:
        return float("inf"), text


def steps_of(spec: str, half: int, pool: int) -> list[int]:
    ks = sorted({half if s.strip() == "half" else int(s) for s in spec.split(",") if s.strip()})
    return [k for k in ks if 0 < k <= min(half, pool)]


def lung_unet(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    """The product's own command line, in its own process, with this run's registry."""
    env = {**os.environ, HOME_ENV: str(home)}
    return subprocess.run([sys.executable, "-m", "napari_lung_unet.cli", *args], env=env, text=True, capture_output=True, check=False)


def make_current(model_dir: Path, home: Path) -> str:
    """The starting model in a fresh registry, made current with `lung-unet models --rollback`."""
    version = load_model(model_dir).card.version
    registry = Registry(home)
    registry.models_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model_dir, registry.models_dir / version)
    done = lung_unet(["models", "--rollback", version], home)
    if done.returncode != 0 or Registry(home).current_version() != version:
        sys.exit(f"error: lung-unet models --rollback {version} failed: {done.stderr.strip()[-400:]}")
    return version


def finetune_step(corrections: Path, convention: str, home: Path, extra: list[str]) -> tuple[dict, float]:
    """`lung-unet finetune` as the dock runs it; its "done" event's result, and the wall time."""
    t0 = time.perf_counter()
    done = lung_unet(["finetune", "--corrections", str(corrections), "--convention", convention, "--json-progress", *extra], home)
    seconds = time.perf_counter() - t0
    results = [json.loads(line)["result"] for line in done.stdout.splitlines() if line.startswith("{") and '"done"' in line]
    if done.returncode != 0 or not results:
        sys.exit(f"error: lung-unet finetune failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return results[-1], seconds


class Scorer:
    """The site's next cases (Dice and seconds per case, in the site's convention) and the other collections."""

    def __init__(self, next_pairs: list[Pair], convention: str, others: dict[str, list[LoadedCase]]) -> None:
        self.next_pairs, self.next_cases, self.convention, self.others = next_pairs, load_cases(next_pairs), convention, others

    def score(self, model: LoadedModel, effort: bool = True) -> dict:
        predictor = Predictor(model, device="cpu", convention=self.convention)
        out: dict = {"dice": mean_dice(score_cases(predictor, self.next_cases))}
        if effort:
            seconds = [run_case(predictor, p.image, p.masks[0], "paint", 0.97).seconds for p in self.next_pairs]
            out["seconds"] = sum(seconds) / len(seconds)
        for name, cases in self.others.items():
            out[name] = mean_dice(score_cases(Predictor(model, device="cpu"), cases))
        return out


def other_collections(site: str, base: LoadedModel, limit: int) -> dict[str, list[LoadedCase]]:
    """The other collections' validation cases the starting model never trained on, each in its own convention."""
    out = {}
    for name in SITES:
        if name == site or limit <= 0 or not (data_dir() / name).is_dir():
            continue
        _, val = split_of_run(base.card, data_dir() / name)
        known = [p for p in val if p.convention in base.card.conventions]
        if known:
            out[name] = load_cases(fair_subset(known, limit))
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.replot:
        plot(json.loads(args.replot.read_text()), args.plot or REPO / "docs" / "payoff.png")
        return
    base_dir = args.base or cache_dir() / "site-base" / args.site / "stage3" / "best"
    if not (base_dir / "weights.safetensors").is_file():
        sys.exit(f"error: no starting model at {base_dir}: run scripts/train_site_base.sh {args.site} first")
    base, upper = load_model(base_dir), load_model(args.upper)
    if args.site in base.card.training_data:
        sys.exit(f"error: {base.card.version} was trained on {args.site}: it is not a new site for it")
    convention = DATASET_CONVENTIONS.get(args.site, DEFAULT_CONVENTION)
    cases = site_cases(args.site)
    _, upper_val = split_of_run(upper.card, data_dir() / args.site)
    unseen = {p.case_id for p in upper_val} if args.site in upper.card.training_data else {p.case_id for p in cases[len(cases) // 2:]}
    next_pairs = [p for p in cases if p.case_id in unseen][: args.next or None]
    pool = [p for p in cases if p.case_id not in unseen]
    ks = steps_of(args.steps, len(cases) // 2, len(pool))
    print(f"{args.site}: {len(cases)} cases drawn {convention}; {len(next_pairs)} next cases; corrections in steps {ks}", flush=True)
    scorer = Scorer(next_pairs, convention, other_collections(args.site, base, args.others))
    if args.references:
        rows = json.loads(args.references.read_text())["rows"][:2]
    else:
        rows = [{"label": f"starting model ({base.card.version})", "k": 0, **scorer.score(base)},
                {"label": f"upper bound ({upper.card.version}, trained with the site)", "k": None, **scorer.score(upper)}]
    print(*rows, sep="\n", flush=True)
    work = Path(tempfile.mkdtemp(prefix="new_site_"))
    extra = shlex.split(args.finetune_args)
    try:
        home = work / "home"
        make_current(base_dir, home)
        for k in ks:
            folder = link_subset(pool[:k], work / f"corrections-{k}")
            result, seconds = finetune_step(folder, convention, home, extra)
            registry = Registry(home)
            current = registry.current_version()
            row = {"label": args.label or "lung-unet finetune", "k": k, "version": current, "status": result["status"],
                   "verdict": _verdict(result), "time": seconds, **scorer.score(registry.load(current)),
                   "checks": result.get("checks", [])}
            if current != result["version"]:
                row["candidate_dice"] = scorer.score(registry.load(result["version"]), effort=False)["dice"]
            rows.append(row)
            print(row, flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"site": args.site, "convention": convention, "rows": rows}, indent=1))
    title = f"Payoff at a new site: {args.site} (bench/new_site.py){', ' + args.label if args.label else ''}"
    publish(title, table(rows, args.site, convention, list(scorer.others), len(next_pairs), base.card.version), record=not args.no_record)
    if args.plot:
        plot({"site": args.site, "convention": convention, "rows": rows}, args.plot)


def _verdict(result: dict) -> str:
    from napari_lung_unet.widget.finetune_text import verdict

    return verdict(result)


def table(rows: list[dict], site: str, convention: str, others: list[str], n_next: int, base: str) -> list[str]:
    head = ["corrections", f"next {n_next} cases, {convention} Dice", "s/case (paint)", *[f"{o} val" for o in others], "verdict", "time (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    start, upper = rows[0]["dice"], rows[1]["dice"]
    for r in rows:
        k = r["label"] if r["k"] in (0, None) else str(r["k"])
        dice = f"{r['dice']:.4f}"
        if r["k"]:
            dice += f" ({(r['dice'] - start) / (upper - start):.0%} of the gap)" if upper != start else ""
            if "candidate_dice" in r:
                dice += f"; candidate {r['candidate_dice']:.4f}"
        cells = [k, dice, f"{r['seconds']:.2f}", *[f"{r[o]:.4f}" for o in others],
                 r.get("verdict", "–"), f"{r['time']:.0f}" if "time" in r else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Start: `{base}`, which never saw {site}, made current with `lung-unet models --rollback`. Each step accepts "
              f"the site's next corrections (patient order, drawn {convention}) and runs `lung-unet finetune --convention {convention}` "
              "with the base data, from the current model; the next cases are patients neither the start nor the upper bound trained "
              "on. Dice: the model current after the step; 'candidate': the fine-tuned one, when the verdict kept the current model. "
              "Gap: from the starting model to the upper bound. s/case: bench/correction_effort.py's reviewer, paint mode."]
    return lines


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["rows"]
    start, upper = rows[0], rows[1]
    steps = [rows[0]] + [r for r in rows[2:]]
    x = [r["k"] for r in steps]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, key, name in ((axes[0], "dice", f"Dice on the next cases ({data['convention']})"), (axes[1], "seconds", "seconds per case (simulated, paint)")):
        ax.plot(x, [r[key] for r in steps], "o-", color="C0", label="current model after lung-unet finetune")
        if key == "dice" and any("candidate_dice" in r for r in steps):
            kept_out = [r for r in steps if "candidate_dice" in r]
            ax.plot([r["k"] for r in kept_out], [r["candidate_dice"] for r in kept_out], "x", color="C3", ms=8,
                    label="candidate the verdict did not promote")
        ax.axhline(start[key], color="C7", ls="--", label=start["label"])
        ax.axhline(upper[key], color="C2", ls=":", label=upper["label"])
        ax.set_xlabel("corrections accepted")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"The learning loop at a site the model never saw: {data['site']}", fontsize=11)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
