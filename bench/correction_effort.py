"""The clinician's seconds per case, from a simulated reviewer with a fixed stroke model (issue 19).

    python bench/correction_effort.py (--images DIR --masks DIR | --store DIR) --mode paint|refine|oracle \\
        [--model DIR] [--refiner DIR] [--convention C] [--target 0.97] [--split val] [--limit N] [--cases A,B] [--record]

The stroke model is in bench/_reviewer.py. The proposal is the model's labels for the image (what the
dock shows); true masks are 0/255 and Dice counts any label > 0 as lung. ``--split val`` keeps the
cases the model's training run held out for validation (training/data.py split_of_run), for
Shenzhen and Montgomery; the dataset root is the parent of ``--images``. ``--mode oracle`` is the bound
for any refiner that fixes only what is clicked: each click fixes exactly the wrong region it lands on (it
reads the truth, so it measures the stroke model, not a tool). Paint mode also prints the click floor: a case
the proposal does not pass needs one click at the least, so no click tool can cost less than 2 s + 1 s x the
share of such cases. ``--refiner DIR`` with ``--mode refine``
clicks with a learned refiner (napari_lung_unet/nn/refine_learned.py) instead of the region growing.

``--store DIR`` measures real reviews instead: each case of a corrections store that kept its proposal
(issue 33 #6) starts from that proposal, as the model drew it for the clinician, and its truth is the mask the
clinician accepted (MONAI Label's original and final labels). Only cases whose proposal was drawn in
``--convention`` are taken. Refine mode still builds its click context from ``--model``'s prediction of the
image (the store keeps the labels, not the probabilities): give the model that proposed them. The last line printed is

    seconds/case S strokes/case K clicks/case C untouched F reached R dice_before B dice_after A n N
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
from pathlib import Path

import numpy as np
from skimage.measure import label

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import publish  # noqa: E402
from _review_order import order_lines  # noqa: E402
from _reviewer import AIM_S, LOOK_AND_ACCEPT_S, CaseEffort, Refiner, paint, review  # noqa: E402

from napari_lung_unet.images.read import IMAGE_SUFFIXES, read_xray  # noqa: E402
from napari_lung_unet.nn.model_io import LoadedModel, load_model  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.nn.refine import Click, RefineContext  # noqa: E402
from napari_lung_unet.nn.refine_learned import LearnedRefineContext  # noqa: E402
from napari_lung_unet.settings import bundled_model_dir  # noqa: E402

DEFAULT_CONVENTION = "lung-fields"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path)
    ap.add_argument("--masks", type=Path)
    ap.add_argument("--store", type=Path, help="a corrections store: its kept proposals and accepted masks instead of --images/--masks")
    ap.add_argument("--mode", required=True, choices=("paint", "refine", "oracle"))
    ap.add_argument("--model", default=str(bundled_model_dir()))
    ap.add_argument("--refiner", default="", help="a learned refiner's folder: --mode refine clicks with it")
    ap.add_argument("--hybrid", action="store_true", help="with --refiner: a click the other convention agrees with takes its region")
    ap.add_argument("--convention", default=DEFAULT_CONVENTION)
    ap.add_argument("--target", type=float, default=0.97)
    ap.add_argument("--split", choices=("all", "val"), default="all", help="val: the model's training validation split")
    ap.add_argument("--limit", type=int, default=0, help="only the first N cases (after --split and --cases)")
    ap.add_argument("--cases", default="", help="comma-separated case ids")
    ap.add_argument("--record", action="store_true", help="append the result to docs/benchmarks.md")
    ap.add_argument("--orders", action="store_true",
                    help="also: seconds to correct the worst 20 %% in file, random and least-sure-first order (bench/_review_order.py)")
    args = ap.parse_args()
    if args.store is not None:
        if args.images is not None or args.masks is not None:
            ap.error("give either --images and --masks, or --store")
        if args.split != "all":
            ap.error("--split val reads a dataset's training split; a store's cases have none")
    elif args.images is None or args.masks is None:
        ap.error("give either --images and --masks, or --store")
    return args


def make_predictor(model: str, convention: str) -> Predictor:
    """The model drawing ``convention``; a Predictor without conventions draws lung fields only."""
    loaded = load_model(model)
    if "convention" in inspect.signature(Predictor).parameters:
        return Predictor(loaded, device="cpu", convention=convention)  # refuses an unknown one by name
    if convention != DEFAULT_CONVENTION:
        sys.exit(f"error: model {loaded.card.version} knows only {DEFAULT_CONVENTION}; it cannot propose {convention}")
    return Predictor(loaded, device="cpu")


def stored_cases(store_dir: Path, convention: str) -> list[tuple[str, Path, Path, Path | None]]:
    """(case id, image, accepted mask, kept proposal) of each stored case whose proposal is in ``convention``."""
    from napari_lung_unet.store.corrections import CorrectionsStore

    if not (store_dir / "records").is_dir():
        sys.exit(f"error: not a corrections store: {store_dir}")
    store = CorrectionsStore(store_dir)
    cases = [store.case(i) for i in store.case_ids()]  # each checked against its record
    kept = [c for c in cases if c.proposal is not None and c.record.proposal_convention == convention]
    print(f"{store_dir}: {len(kept)} of {len(cases)} cases kept a {convention} proposal", flush=True)
    return [(c.case_id, c.image, c.mask, c.proposal) for c in kept]


def select_cases(args: argparse.Namespace, predictor: Predictor) -> list[tuple[str, Path, Path, Path | None]]:
    if args.store is not None:
        return _chosen(stored_cases(args.store, args.convention), args)
    for folder in (args.images, args.masks):
        if not folder.is_dir():
            sys.exit(f"error: not a folder: {folder}")
    masks = {p.stem: p for p in args.masks.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    cases: list[tuple[str, Path, Path, Path | None]] = [
        (p.stem, p, masks[p.stem], None) for p in sorted(args.images.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in masks
    ]
    if args.split == "val":
        from training.data import split_of_run

        _, val = split_of_run(predictor.card, args.images.parent)
        keep = {p.case_id for p in val}
        cases = [c for c in cases if c[0] in keep]
    return _chosen(cases, args)


def _chosen(cases: list[tuple[str, Path, Path, Path | None]], args: argparse.Namespace) -> list[tuple[str, Path, Path, Path | None]]:
    """``--cases`` and ``--limit`` applied; an empty selection is an error."""
    if args.cases:
        wanted = set(args.cases.split(","))
        cases = [c for c in cases if c[0] in wanted]
    if args.limit:
        cases = cases[: args.limit]
    if not cases:
        sys.exit("error: no image/mask pairs selected")
    return cases


def run_case(
    predictor: Predictor, image_path: Path, mask_path: Path, mode: str, target: float, learned: LoadedModel | None = None,
    hybrid: bool = False, proposal_path: Path | None = None, expected: list[float] | None = None,
) -> CaseEffort:
    """One case's review from the model's proposal: regenerated, or the one a store kept (``proposal_path``)."""
    import imageio.v3 as iio

    xray = read_xray(image_path)
    truth = np.asarray(iio.imread(mask_path)) > 0
    if truth.ndim == 3:
        truth = truth.any(axis=-1)
    kept = np.asarray(iio.imread(proposal_path)) if proposal_path is not None else None
    if kept is not None and mode != "refine":  # nothing else needs the model
        if expected is not None:
            expected.append(float("nan"))  # no prediction: a kept proposal has no estimate to order by
        return review(kept, truth, target, exact_region_refiner(truth) if mode == "oracle" else None)
    prediction = predictor.predict(xray)
    start = prediction.labels if kept is None else kept
    if expected is not None:  # what the dock's least-sure-first order would sort this case by
        expected.append(prediction.expected_dice)
    if mode == "paint":
        return review(start, truth, target)
    if mode == "oracle":
        return review(start, truth, target, exact_region_refiner(truth))
    context: RefineContext | LearnedRefineContext
    if learned is not None:
        other = other_convention(predictor, xray) if hybrid else None
        context = LearnedRefineContext.from_prediction(learned, prediction, xray, other=other)  # type: ignore[arg-type]
    else:
        context = RefineContext.from_prediction(prediction, other_convention(predictor, xray))

    def refiner(r: int, c: int, positive: bool, labels: np.ndarray, painted: np.ndarray) -> np.ndarray:
        done = context.refine(labels, Click(r, c, positive), painted)
        out = labels.copy()  # the widget writes the box through data_setitem; the copy is the bench's
        out[done.box] = done.labels
        return out

    return review(start, truth, target, refiner)


def exact_region_refiner(truth: np.ndarray) -> Refiner:
    """A click that fixes exactly the wrong region it lands on, and nothing else: the floor of the
    seconds per case for any refiner whose click answers only the region clicked."""

    def refiner(r: int, c: int, positive: bool, labels: np.ndarray, painted: np.ndarray) -> np.ndarray:
        pieces = label((labels > 0) ^ truth, connectivity=2)  # the reviewer's regions: 8-connected
        out = labels.copy()
        paint(out, pieces == pieces[r, c], truth)
        return out

    return refiner


def other_convention(predictor: Predictor, xray: object) -> object | None:
    """The image in the model's other lung convention, when the model knows two (a positive click in
    lung the proposal's convention leaves out can take the other's region); None otherwise."""
    known = list(getattr(predictor.card, "conventions", []))
    if len(known) < 2 or not hasattr(predictor, "for_convention"):
        return None
    other = next(c for c in known if c != predictor.convention)
    return predictor.for_convention(other).predict(xray)


def summary(efforts: list[CaseEffort]) -> str:
    n = len(efforts)

    def mean(values: list[float]) -> float:
        return sum(values) / n

    return (
        f"seconds/case {mean([e.seconds for e in efforts]):.2f} strokes/case {mean([e.strokes for e in efforts]):.2f} "
        f"clicks/case {mean([e.clicks for e in efforts]):.2f} untouched {mean([e.untouched for e in efforts]):.2f} "
        f"reached {mean([e.reached for e in efforts]):.2f} dice_before {mean([e.dice_before for e in efforts]):.4f} "
        f"dice_after {mean([e.dice_after for e in efforts]):.4f} n {n}"
    )


def click_floor(efforts: list[CaseEffort]) -> str:
    """The fewest seconds any click tool can cost on these proposals: a case the proposal does not pass
    needs at least one click (1 s), whatever the click does, and every case is looked at (2 s)."""
    touched = sum(not e.untouched for e in efforts) / len(efforts)
    floor = LOOK_AND_ACCEPT_S + AIM_S * touched
    paint_s = sum(e.seconds for e in efforts) / len(efforts)
    return (f"click floor: {floor:.2f} s/case ({floor / paint_s:.2f}x paint): {touched:.0%} of cases need a click, "
            "one click each at best")


def main() -> None:
    args = parse_args()
    predictor = make_predictor(args.model, args.convention)
    cases = select_cases(args, predictor)
    learned = load_model(args.refiner) if args.refiner and args.mode == "refine" else None
    efforts, expected = [], []
    for case_id, image_path, mask_path, proposal_path in cases:
        effort = run_case(predictor, image_path, mask_path, args.mode, args.target, learned, args.hybrid, proposal_path, expected)
        efforts.append(effort)
        ms = f" refine ms {statistics.median(effort.refine_ms):.0f}" if effort.refine_ms else ""
        print(f"{case_id}: {effort.seconds:.1f} s, {effort.strokes} strokes, {effort.clicks} clicks, "
              f"dice {effort.dice_before:.4f} -> {effort.dice_after:.4f}{ms}", flush=True)
    all_ms = [m for e in efforts for m in e.refine_ms]
    if all_ms:
        print(f"refine latency: median {statistics.median(all_ms):.0f} ms, max {max(all_ms):.0f} ms over {len(all_ms)} clicks")
    line = summary(efforts)
    floor = click_floor(efforts) if args.mode == "paint" else ""
    if floor:
        print(floor)
    orders = order_lines(expected, [e.seconds for e in efforts], [e.dice_before for e in efforts]) if args.orders else []
    print("\n".join(orders))
    if args.record:
        tool = f"{'hybrid' if args.hybrid else 'learned'} {learned.card.version}" if learned is not None else args.mode
        where = f"store {args.store.name}, kept proposals" if args.store is not None else f"{args.images.parent.name} ({args.split})"
        title = f"Correction effort: {where}, {tool}, {predictor.version}"
        publish(title, [f"`{line}`", *(["", floor] if floor else []), *([""] + orders if orders else [])], record=True)
    print(line)


if __name__ == "__main__":
    main()
