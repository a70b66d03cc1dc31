"""Train a learned refiner (issue 19): the bundled model with click inputs, on simulated clicks.

    OMP_NUM_THREADS=2 python -m training.refiner_train --data DATA/montgomery --data DATA/shenzhen \\
        --data DATA/covid_v7labs@whole-lung --output runs/refiner-1 [--parent DIR] [--steps 600] [--cache FILE] \\
        [--store CORRECTIONS_DIR]

Cases: the parent's own training split of each dataset (its validation split measures the clicks).
Previous masks: the parent's labels at its input size in each of its conventions, computed once (a
lung-fields proposal against a whole-lung truth is the big error of a whole-lung site). A sample takes
one at random, clicks the deepest point of its largest wrong region (the simulated reviewer's rule,
napari_lung_unet/nn/clicks.py) and, some of the time, a second click after that region is fixed. The
network sees a ``--crop``² window around the last click, as at inference; the target is the truth in
its own convention, drawn at the proposal's output. Validation: the share of first clicks on the
parent's validation split that leave at most half of the clicked region wrong (the reviewer's test).

``--store DIR`` adds real reviews to the training cases (issue 33 #6): each case of a corrections store that
kept the proposal its clinician started from is trained from that proposal (in its convention's slot, and
always that slot) toward the mask the clinician accepted, instead of from a regenerated one.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from napari_lung_unet.nn.card import ModelCard, utc_now
from napari_lung_unet.nn.clicks import click_maps, click_point, largest_region
from napari_lung_unet.nn.model import UNet
from napari_lung_unet.nn.model_io import LoadedModel, load_model, save_model
from napari_lung_unet.nn.postprocess import labels_from_probability
from napari_lung_unet.nn.refine import piece_at
from napari_lung_unet.nn.preprocess import resize
from napari_lung_unet.nn.refine_learned import DEFAULT_CROP, crop_at, refiner_from_parent
from napari_lung_unet.store.corrections import CorrectionsStore
from napari_lung_unet.settings import bundled_model_dir

from .augment import AugmentConfig, augment
from .data import ArrayData, discover_pairs, load_arrays, split_convention, split_of_run, tag_conventions
from .metrics import dice_bce_loss

MIN_REGION = 20.0  # px at 384²: a quarter of the reviewer's brush disc (bench/_reviewer.py)
SECOND_CLICK = 0.4  # share of samples with a second click, after the first region is fixed
LIGHT = AugmentConfig(rotate_deg=5.0, scale=0.05, shift=0.03, noise_std=0.02, blur_prob=0.1)


def proposals(parent: LoadedModel, images: torch.Tensor) -> torch.Tensor:
    """N×K×S×S bool: the parent's labels (post-processed as the dock shows them) in each of its K conventions."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), 8):
            probs = torch.sigmoid(parent.model(images[i : i + 8, None])).numpy()
            out += [[labels_from_probability(p, p.shape, parent.card.threshold) > 0 for p in case] for case in probs]
            if i % 80 == 0:
                print(f"proposals: {i + len(probs)}/{len(images)}", flush=True)
    return torch.from_numpy(np.array(out))


def prepared(parent: LoadedModel, specs: list[str], cache: Path | None) -> dict[str, tuple[ArrayData, torch.Tensor]]:
    """train and val: the cases at the parent's input size and the parent's proposals for them (cached)."""
    if cache is not None and cache.is_file():
        blob = torch.load(cache, weights_only=True)
        return {k: (ArrayData(v["images"], v["masks"], v["ids"], v["outputs"]), v["proposals"]) for k, v in blob.items()}
    parts: dict[str, list] = {"train": [], "val": []}
    for spec in specs:
        path, convention = split_convention(spec)
        train, val = split_of_run(parent.card, path)
        if convention is not None:  # DATA@CONVENTION: every case of it is drawn that way
            train, val = tag_conventions(train, {}, convention), tag_conventions(val, {}, convention)
        parts["train"] += train
        parts["val"] += val
    out, blob = {}, {}
    for name, pairs in parts.items():
        data = load_arrays(pairs, parent.card.input_size, parent.card.normalisation, conventions=parent.card.conventions)
        props = proposals(parent, data.images)
        out[name] = (data, props)
        blob[name] = {"images": data.images, "masks": data.masks, "ids": data.case_ids, "outputs": data.outputs, "proposals": props}
        print(f"{name}: {len(data)} cases", flush=True)
    if cache is not None:
        torch.save(blob, cache)
    return out


def stored_proposals(parent: LoadedModel, store_dir: Path) -> tuple[ArrayData, torch.Tensor, torch.Tensor]:
    """A corrections store's cases that kept their proposal, at the parent's input size: the accepted masks,
    the parent's proposals in each convention with the kept one in its own convention's slot, and that slot."""
    conventions = list(parent.card.conventions)
    store = CorrectionsStore(store_dir)
    cases = [store.case(i) for i in store.case_ids()]  # each checked against its record
    kept = {c.case_id: c for c in cases if c.proposal is not None and c.record.proposal_convention in conventions}
    if not kept:
        raise SystemExit(f"error: {store_dir}: no case kept a proposal in a convention of {parent.card.version} ({', '.join(conventions)})")
    pairs = [p for p in discover_pairs(store_dir) if p.case_id in kept]
    data = load_arrays(pairs, parent.card.input_size, parent.card.normalisation, conventions=conventions)
    props = proposals(parent, data.images)
    slots = torch.tensor([conventions.index(kept[p.case_id].record.proposal_convention) for p in pairs])
    size = (parent.card.input_size, parent.card.input_size)
    for i, pair in enumerate(pairs):
        labels = np.asarray(iio.imread(kept[pair.case_id].proposal)) > 0
        props[i, slots[i]] = resize(labels.astype(np.float32), size) > 0.5  # as load_arrays resizes masks
    print(f"{store_dir}: {len(pairs)} of {len(cases)} cases with their kept proposal", flush=True)
    return data, props, slots


def joined(a: ArrayData, b: ArrayData) -> ArrayData:
    assert a.outputs is not None and b.outputs is not None  # both loaded with the parent's conventions
    return ArrayData(torch.cat([a.images, b.images]), torch.cat([a.masks, b.masks]), a.case_ids + b.case_ids,
                     torch.cat([a.outputs, b.outputs]))


def sample(
    data: ArrayData, props: torch.Tensor, i: int, rng: random.Random, crop: int, augmenting: bool,
    default_share: float = 0.0, max_clicks: int = 2, slot: int = -1,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One training sample: 4×C×C input, 1×C×C target, and the output (the proposal's convention):
    ``slot`` when it is set (a kept proposal: the one the clinician saw), else output 0 (the default
    convention, what the dock proposes) with ``default_share``, else any."""
    k = slot if slot >= 0 else 0 if rng.random() < default_share else rng.randrange(props.shape[1])
    image, truth, prev = data.images[i], data.masks[i], props[i, k].float()
    if augmenting:
        seed = rng.randrange(1 << 30)
        image, truth = augment(image, truth, LIGHT, torch.Generator().manual_seed(seed))
        # the same seed draws the same geometry first: the previous mask moves with the image
        prev = augment(prev, prev, LIGHT, torch.Generator().manual_seed(seed))[1]
    t, p = truth.numpy() > 0.5, prev.numpy() > 0.5
    prev_mask, clicks = p, []
    for _ in range(1 + sum(rng.random() < SECOND_CLICK for _ in range(max_clicks - 1))):
        region = largest_region(p ^ t, MIN_REGION)
        if region is None:
            break
        r, c = click_point(region)
        clicks.append((r, c, bool(t[r, c])))
        prev_mask = p  # the mask this click is made on
        p = np.where(region, t, p)  # then the click worked (or the region was painted): that region is right
    size = (t.shape[0], t.shape[1])
    centre = (clicks[-1][0], clicks[-1][1]) if clicks else (rng.randrange(size[0]), rng.randrange(size[1]))
    jitter = crop // 8
    box = crop_at((centre[0] + rng.randint(-jitter, jitter), centre[1] + rng.randint(-jitter, jitter)), size, crop)
    maps = click_maps([(float(r), float(c), s) for r, c, s in clicks], (box[0].stop - box[0].start, box[1].stop - box[1].start), (box[0].start, box[1].start))
    x = torch.cat([image[box][None], torch.from_numpy(prev_mask[box].astype(np.float32))[None], maps])
    return x, truth[box][None], k


def click_success(model: UNet, data: ArrayData, props: torch.Tensor, crop: int, outputs: int = 0) -> float:
    """Share of first clicks (each case, each proposal convention, or only the first ``outputs``) that leave
    at most half the clicked region wrong."""
    hits = total = 0
    model.eval()
    with torch.inference_mode():
        for i in range(len(data)):
            t = data.masks[i].numpy() > 0.5
            for k in range(outputs or props.shape[1]):
                p = props[i, k].numpy()
                region = largest_region(p ^ t, MIN_REGION)
                if region is None:
                    continue
                r, c = click_point(region)
                box = crop_at((r, c), t.shape, crop)
                maps = click_maps([(float(r), float(c), bool(t[r, c]))], region[box].shape, (box[0].start, box[1].start))
                x = torch.cat([data.images[i][box][None], torch.from_numpy(p[box].astype(np.float32))[None], maps])[None]
                drawn = model(x, torch.tensor([k]))[0, k].numpy() > 0
                positive = bool(t[r, c])
                grown = (drawn & ~p[box]) if positive else (~drawn & p[box])
                after = p.copy()  # as LearnedRefineContext applies it: the change connected to the click
                after[box] ^= piece_at(grown, (r - box[0].start, c - box[1].start))
                hits += int(((after != t) & region).sum() <= region.sum() / 2)
                total += 1
    model.train()
    return hits / max(total, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--parent", default=str(bundled_model_dir()))
    ap.add_argument("--steps", type=int, default=600, help="at most this many steps")
    ap.add_argument("--minutes", type=float, default=0.0, help="a time budget: the learning rate anneals over it (0: over --steps)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--crop", type=int, default=DEFAULT_CROP)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--version", default="refiner-1")
    ap.add_argument("--init", default="", help="start from this refiner's weights instead of the parent's")
    ap.add_argument("--default-share", type=float, default=0.0, help="share of samples proposing in the default convention")
    ap.add_argument("--repeat-other", type=int, default=1, help="draw cases of the other convention this many times as often")
    ap.add_argument("--max-clicks", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", type=Path, default=None, help="a corrections store: its cases' kept proposals join the training cases")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    parent = load_model(args.parent)
    sets = prepared(parent, args.data, args.cache)
    (train, train_props), (val, val_props) = sets["train"], sets["val"]
    slots = torch.full((len(train),), -1)  # -1: a regenerated proposal, any slot
    if args.store is not None:
        stored, stored_props, stored_slots = stored_proposals(parent, args.store)
        train, train_props, slots = joined(train, stored), torch.cat([train_props, stored_props]), torch.cat([slots, stored_slots])
    model = load_model(args.init).model if args.init else refiner_from_parent(parent)
    # cases drawn in the other convention (whole-lung): where a default proposal is most wrong
    pool = [i for i in range(len(train)) for _ in range(args.repeat_other if train.output_of(i) != 0 else 1)]
    # with mostly default proposals in training, the default ones select the weights too
    judged = 1 if args.default_share >= 0.5 else 0
    best = click_success(model, val, val_props, args.crop, judged)
    print(f"step 0: val click success {best:.3f} (the starting weights)", flush=True)
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    model.train()
    t0, history = time.time(), []
    for step in range(1, args.steps + 1):
        batch = []
        for _ in range(args.batch_size):  # a pick, then its sample: the random stream of runs before --store
            i = rng.choice(pool)
            batch.append(sample(train, train_props, i, rng, args.crop, True, args.default_share, args.max_clicks, int(slots[i])))
        x, y = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
        k = torch.tensor([b[2] for b in batch])
        logits = model(x, k).gather(1, k[:, None, None, None].expand(-1, 1, *x.shape[-2:]))
        loss = dice_bce_loss(logits, y)
        opt.zero_grad()
        loss.backward()
        done = max(step / args.steps, (time.time() - t0) / (60 * args.minutes) if args.minutes else 0.0)
        for group in opt.param_groups:  # a short warm-up, then cosine to zero at the end of the budget
            group["lr"] = args.lr * min(1.0, step / 20) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
        opt.step()
        if step % 10 == 0:
            per = (time.time() - t0) / step
            print(f"step {step} loss {loss.item():.4f} {per:.2f} s/step, {100 * done:.0f} % done", flush=True)
        last = done >= 1.0 or step == args.steps
        if step % args.eval_every == 0 or last:
            score = click_success(model, val, val_props, args.crop, judged)
            history.append({"step": step, "val_click_success": score})
            print(f"step {step}: val click success {score:.3f}", flush=True)
            if score > best:
                best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
        if last:
            break
    model.load_state_dict(best_state)
    model.eval()
    card = ModelCard(
        version=args.version, architecture=model.config, input_size=parent.card.input_size,
        normalisation=parent.card.normalisation, threshold=parent.card.threshold, training_data=parent.card.training_data,
        parent=parent.card.version, created=utc_now(), conventions=list(parent.card.conventions),
        metrics={"val_click_success": best, "history": history},
        extra={"refiner": True, "refines": parent.card.version, "crop": args.crop, "steps": step, "minutes_budget": args.minutes, "init": args.init or None,
               "default_share": args.default_share, "repeat_other": args.repeat_other, "max_clicks": args.max_clicks,
               "batch_size": args.batch_size, "lr": args.lr, "data": args.data, "store": str(args.store) if args.store else None, "minutes": round((time.time() - t0) / 60, 1),
               "reproduce": "python -m training.refiner_train (training/refiner_train.py)"},
    )
    save_model(args.output, model, card)
    print(f"saved {args.output} (val click success {best:.3f})", flush=True)


if __name__ == "__main__":
    main()
