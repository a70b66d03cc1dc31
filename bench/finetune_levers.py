"""Which protection against forgetting works without the base data on disk, and how fast is fine-tuning?

A new site: N covid_v7labs X-rays as corrections (their masks include the lung behind the heart:
``--convention whole-lung`` says so, for a model that knows that convention), scored on the other
half of covid_v7labs; forgetting: the Montgomery validation cases the model never trained on
(lung fields). Each lever runs with ``LUNG_UNET_DATA`` pointing at an empty folder (what a user has
after ``pip install``) and/or at the real data (replay and base validation). The wall time is
``finetune()``'s own: reading, training, gating and registering, split into its parts from the
progress events (load; encoding the augmented images once; steps × median step; gate; register).
Each fine-tune runs in its own process; ``--before-tree DIR`` runs the "before" lever with the code
of another checkout (e.g. a worktree of main before a change), in the same run, for a ratio.
The candidate is scored whatever the gate decided.

    python bench/finetune_levers.py [--model DIR] [--corrections 7] [--convention whole-lung]
        [--levers NAME ...] [--data none base] [--before-tree DIR] [--no-record]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import append_markdown  # noqa: E402

from napari_lung_unet.nn.model_io import load_model  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.nn.registry import Registry  # noqa: E402
from napari_lung_unet.settings import DATA_ENV, HOME_ENV, bundled_model_dir, data_dir  # noqa: E402
from training.data import discover_pairs, split_of_run, stable_split  # noqa: E402
from training.evaluate import load_cases, mean_dice, score_cases  # noqa: E402
from training.finetune import FinetuneConfig  # noqa: E402

BEFORE = "before (--before-tree's code, its defaults)"
# Each lever: the settings that differ from the defaults (plain values, so that another checkout's
# worker can take them; one it does not know is left out there).
LEVERS: dict[str, dict] = {
    BEFORE: {},
    "130 steps x 5 (with base data: 2 corrections + 3 replay)": {"steps": 130, "batch_size": 5},
    "defaults": {},
    "defaults, no feature cache": {"feature_reuse": 0},
    "65 x 5": {"steps": 65, "batch_size": 5},
    "65 x 5, lr 1e-3": {"steps": 65, "batch_size": 5, "lr": 1e-3},
    "80 x 5": {"steps": 80, "batch_size": 5},
    "shorter (60 x 3)": {"steps": 60, "batch_size": 3},
    "shorter + EWC 1.0": {"steps": 60, "batch_size": 3, "ewc": 1.0},
    "shorter, decoder normalisation only, lr 3e-3": {"steps": 60, "batch_size": 3, "train_layers": "norm", "lr": 3e-3},
    "shorter, last stage + head only": {"steps": 60, "batch_size": 3, "train_layers": "last"},
    "shorter, 2 corrections + 2 replay": {"steps": 60, "batch_size": 4, "replay_ratio": 1.0},
    "shorter, 2 + 2 replay, EWC 1.0": {"steps": 60, "batch_size": 4, "replay_ratio": 1.0, "ewc": 1.0},
}


def link_subset(pairs, root: Path) -> Path:  # type: ignore[no-untyped-def]
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for p in pairs:
        (root / "images" / p.image.name).symlink_to(p.image)
        (root / "masks" / p.masks[0].name).symlink_to(p.masks[0])
    return root


def worker(spec: dict) -> None:
    """One fine-tune, in this process, with whatever ``training`` PYTHONPATH gives: prints its times as JSON."""
    from training.finetune import FinetuneConfig, finetune

    os.environ[HOME_ENV], os.environ[DATA_ENV] = spec["home"], spec["data"]
    registry = Registry(spec["home"])
    model = Path(spec["model"])
    version = load_model(model).card.version
    if version != registry.bundled_version:  # registered as the current version, as a user would have it
        registry.models_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(model, registry.models_dir / version)
        registry.set_current(version)
    known = {f.name for f in fields(FinetuneConfig)}
    cfg = FinetuneConfig(**{k: v for k, v in spec["cfg"].items() if k in known})
    events: list[tuple[float, dict]] = []
    t0 = time.perf_counter()
    result = finetune(cfg, lambda e: events.append((time.perf_counter() - t0, e)))
    at = {}
    for t, e in events:
        at.setdefault(e["stage"] if "encoding" not in str(e.get("message", "")) else "encode", t)
    train = [(t, e) for t, e in events if e["stage"] == "train"]
    step = statistics.median([b[0] - a[0] for a, b in zip(train, train[1:])])
    first_step = train[0][0] - step  # about when step 1 began
    end_train = train[-1][0]
    phases = {"load": at.get("encode", first_step), "encode": first_step - at["encode"] if "encode" in at else 0.0,
              "steps": len(train), "step_s": step, "train": end_train - first_step,
              "gate": at.get("register", result.seconds) - end_train, "register": result.seconds - at["register"] if "register" in at else None}
    print(json.dumps({"version": result.version, "status": result.status, "reason": result.reason, "seconds": result.seconds, "phases": phases}))


def run_worker(spec: dict, tree: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env, cwd=tree,
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"fine-tune failed ({tree}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levers", nargs="+", default=[n for n in LEVERS if n != BEFORE], choices=list(LEVERS))
    ap.add_argument("--data", nargs="+", default=["none", "base"], choices=["none", "base"])
    ap.add_argument("--model", default=str(bundled_model_dir()), help="the parent model folder (default: the bundled one)")
    ap.add_argument("--corrections", type=int, default=12)
    ap.add_argument("--convention", default=None, help="the corrections' convention (default: the model's own)")
    ap.add_argument("--before-tree", default=None, help="a checkout whose code runs the 'before' lever")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks.md")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if BEFORE in args.levers and not args.before_tree:
        ap.error(f"--levers '{BEFORE}' needs --before-tree")

    data = data_dir()
    here = Path(__file__).resolve().parents[1]
    pool, test_half = stable_split(discover_pairs(data / "covid_v7labs"), 0.5, seed=1)
    work = Path(tempfile.mkdtemp(prefix="ft_levers_"))
    corrections = link_subset(pool[: args.corrections], work / "corrections")
    empty = work / "no_data"
    empty.mkdir()
    base = load_model(args.model)
    _, mont_val = split_of_run(base.card, data / "montgomery")
    v7_cases, mont_cases = load_cases(test_half), load_cases(mont_val)

    def score(loaded) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        p = Predictor(loaded, device=args.device)
        return mean_dice(score_cases(p, v7_cases)), mean_dice(score_cases(p, mont_cases))

    v7_0, mont_0 = score(base)
    print(f"{base.card.version}: v7labs test half {v7_0:.4f} ({len(v7_cases)} cases), Montgomery val {mont_0:.4f} ({len(mont_cases)})", flush=True)
    rows = []
    for name in args.levers:
        for setting in args.data:
            home = work / f"home-{len(rows)}"
            settings = {**LEVERS[name], "corrections": str(corrections), "device": args.device, "home": str(home),
                        **({"convention": args.convention} if args.convention else {})}
            cfg = FinetuneConfig(**settings)
            spec = {"home": str(home), "data": str(empty if setting == "none" else data), "model": args.model, "cfg": settings}
            out = run_worker(spec, Path(args.before_tree) if name == BEFORE else here)
            v7_1, mont_1 = score(Registry(home).load(out["version"]))
            card = Registry(home).card(out["version"])
            ft, est = card.extra["finetune"], card.metrics["after"].get("estimated_forgetting", float("nan"))
            ph = out["phases"]
            rows.append((name, setting, ft["steps"], ft["batch_size"], cfg.ewc, (v7_1 - v7_0) * 100, (mont_1 - mont_0) * 100, est,
                         out["seconds"], ph, v7_1, _verdict(out)))
            print(f"{name} | data {setting}: v7labs {v7_1:.4f} ({(v7_1 - v7_0) * 100:+.2f} pts), Montgomery {mont_1:.4f} "
                  f"({(mont_1 - mont_0) * 100:+.2f} pts), estimate {est:.1e}, {out['seconds']:.0f} s {json.dumps(ph)}, {_verdict(out)}", flush=True)
    if not args.no_record:
        ref = next((r[8] for r in rows if r[0] == BEFORE), None)
        lines = [
            f"Start: `{base.card.version}` ({args.model}); {args.corrections} covid_v7labs corrections"
            f"{f' accepted as {args.convention}' if args.convention else ''}; scored on the v7labs test half ({len(v7_cases)} cases, "
            f"Dice {v7_0:.4f}, in the model's {args.convention or 'own'} convention) and the Montgomery validation split "
            f"({len(mont_cases)} cases, lung fields, Dice {mont_0:.4f}). 'none': LUNG_UNET_DATA is an empty folder; 'base': "
            "the real data (replay + base validation). Time: the whole finetune() call, and its parts: load, encode (the "
            "augmented images, once), train (steps × median step), gate, register."
            + (f" Before: the code of `{args.before_tree}` (git {_head(args.before_tree)})." if ref else ""),
            "",
            "| lever | base data | steps × batch | EWC λ | v7labs after | v7labs gain (pts) | Montgomery change (pts) | forgetting estimate | "
            "time (s) | load / encode / train (steps × s) / gate / register (s) | × before | gate |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            *(f"| {n} | {s} | {st} × {b} | {e:g} | {v:.4f} | {g:+.2f} | {m:+.2f} | {est:.2e} | {t:.0f} | {_parts(ph)} | "
              f"{t / ref if ref else float('nan'):.2f} | {status} |" for n, s, st, b, e, g, m, est, t, ph, v, status in rows),
        ]
        append_markdown("Fine-tuning levers, with and without base data (bench/finetune_levers.py)", " ".join(["python", *sys.argv]), lines)


def _verdict(out: dict) -> str:
    """The gate's status and, when it rejected, why (a worker of an older tree may not say)."""
    reason = out.get("reason") if out["status"] != "promoted" else None
    return f"{out['status']}: {reason}" if reason else out["status"]


def _parts(ph: dict) -> str:
    reg = f"{ph['register']:.1f}" if ph.get("register") is not None else "(in gate)"
    return f"{ph['load']:.1f} / {ph['encode']:.1f} / {ph['train']:.1f} ({ph['steps']} × {ph['step_s']:.2f}) / {ph['gate']:.1f} / {reg}"


def _head(tree: str) -> str:
    out = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    main()
