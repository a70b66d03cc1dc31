"""Does a kept candidate's small gain show on the corrections that come after it? (issue 32, the verdict)

    python bench/recheck_payoff.py --site shenzhen [--k 10] [--later 5,10,20,40] [--next 40] [--no-record]

At a site where the model is already good, the verdict keeps most candidates: the one to four corrections
they hold back cannot show a gain under a point (bench/new_site.py). This runs the loop one step further,
as a site would: the starting model (never saw the site) is made current, ``lung-unet finetune`` runs on the
first ``k`` corrections; if the candidate is kept, the site goes on accepting cases (into a corrections store,
each accepted after the candidate was made, as proposed by the current model), and after each count in
``--later`` the product's own ``lung-unet models --recheck CANDIDATE`` scores it against the current model on
them. The last row: both models on the site's next cases (never corrections), the gain the recheck is after.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish  # noqa: E402
from finetune_levers import link_subset  # noqa: E402
from new_site import SITES, cache_dir, finetune_step, lung_unet, make_current, site_cases  # noqa: E402

from napari_lung_unet.images.conventions import DEFAULT_CONVENTION  # noqa: E402
from napari_lung_unet.nn.model_io import load_model  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.nn.registry import Registry  # noqa: E402
from napari_lung_unet.settings import bundled_model_dir, data_dir  # noqa: E402
from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsStore, sha256_file  # noqa: E402
from training.data import DATASET_CONVENTIONS, read_pair, split_of_run  # noqa: E402
from training.evaluate import load_cases, mean_dice, score_cases  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--site", required=True, choices=SITES)
    ap.add_argument("--k", type=int, default=10, help="corrections the fine-tune trains on")
    ap.add_argument("--later", default="5,10,20,40", help="corrections accepted after it, at each recheck")
    ap.add_argument("--next", type=int, default=40)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    base_dir = cache_dir() / "site-base" / args.site / "stage3" / "best"
    convention = DATASET_CONVENTIONS.get(args.site, DEFAULT_CONVENTION)
    cases = site_cases(args.site)
    upper = load_model(bundled_model_dir())
    unseen = {p.case_id for p in split_of_run(upper.card, data_dir() / args.site)[1]}
    next_pairs = [p for p in cases if p.case_id in unseen][: args.next]
    pool = [p for p in cases if p.case_id not in unseen]
    later = sorted(int(s) for s in args.later.split(","))
    work = Path(tempfile.mkdtemp(prefix="recheck_"))
    lines = ["| corrections since the candidate | `lung-unet models --recheck` says |", "|---|---|"]
    try:
        home = work / "home"
        start = make_current(base_dir, home)
        result, seconds = finetune_step(link_subset(pool[: args.k], work / "corrections"), convention, home, [])
        candidate = result["version"]
        print(f"fine-tune on {args.k}: {result['status']} ({seconds:.0f} s)", flush=True)
        if Registry(home).current_version() != start:
            sys.exit("the candidate was promoted: nothing to recheck (try another --k)")
        made = datetime.fromisoformat(Registry(home).card(candidate).created)
        store = CorrectionsStore(work / "store")
        for i, pair in enumerate(pool[args.k : args.k + later[-1]], start=1):
            _, mask = read_pair(pair)
            store.add(pair.image, mask.astype("uint8"), CorrectionRecord(
                pair.case_id, str(pair.image), sha256_file(pair.image), start, 0.0, convention=convention,
                accepted=(made + timedelta(minutes=i)).isoformat(timespec="seconds")))
            if i in later:
                done = lung_unet(["models", "--recheck", candidate, "--corrections", str(store.root)], home)
                said = (done.stdout.strip() or done.stderr.strip()).replace("|", "/")
                lines.append(f"| {i} | {said} |")
                print(lines[-1], flush=True)
        registry = Registry(home)
        nxt = load_cases(next_pairs)
        truth = [mean_dice(score_cases(Predictor(registry.load(v), device="cpu", convention=convention), nxt)) for v in (start, candidate)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines += ["", f"The site's next {len(next_pairs)} cases ({convention}), never corrections: {start} {truth[0]:.4f}, "
              f"{candidate} {truth[1]:.4f} ({100 * (truth[1] - truth[0]):+.2f} points). The fine-tune on the first {args.k} "
              f"corrections said: {result['status']} ({seconds:.0f} s)."]
    publish(f"Rechecking a kept candidate on later corrections: {args.site} (bench/recheck_payoff.py)", lines, record=not args.no_record)


if __name__ == "__main__":
    main()
