"""Train a learned refiner (issues 19, 30): the bundled model with click inputs, on simulated click sequences.

    OMP_NUM_THREADS=1 python -m training.refiner_train --data DATA/montgomery --data DATA/shenzhen \\
        --data DATA/covid_v7labs@whole-lung --output DIR [--parent DIR] [--steps 20000] [--cache FILE] [--resume]

Cases: the parent's own training split of each dataset (its validation split measures the clicks).
Previous masks: the parent's labels at its input size in each of its conventions, computed once (a
lung-fields proposal against a whole-lung truth is the big error of a whole-lung site).

Iterative clicks (RITM): each batch first plays 0 to ``--max-clicks`` - 1 earlier clicks without
gradients: each goes to the deepest point of the largest wrong region (the simulated reviewer's rule,
napari_lung_unet/nn/clicks.py), and is answered by the network's own redraw (``--self-share`` of
them) or by the true fix of that region (cheaper). The trained click then goes where the error is
largest after them, with every earlier click still on the click maps: the 2nd and 3rd clicks train too.

What a click means (issue 30): the network sees the clicked side of the image (full height, half the
width, napari_lung_unet/nn/refine_learned.py ``side_window``) and its target is the whole true lung
there, so one click redraws that side's lung; the redraw is merged where it differs (``redrawn``),
in training's earlier clicks as at inference. Validation: the share of first clicks on the parent's
validation split that leave at most half of the clicked region wrong (the reviewer's test), and the
share of all wrong pixels the first click removes.

Resumable: every ``--checkpoint-every`` steps, ``DIR/checkpoint.pt`` (model, optimiser, step, Python
and torch RNG states, history, best) is replaced atomically; ``--resume`` continues from it on the
same schedule. The best refiner so far is a model folder at ``DIR`` from the first improvement on.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from napari_lung_unet.nn.card import ModelCard, utc_now
from napari_lung_unet.nn.clicks import click_maps, click_point, largest_region
from napari_lung_unet.nn.model import UNet
from napari_lung_unet.nn.model_io import LoadedModel, load_model, save_model
from napari_lung_unet.nn.postprocess import labels_from_probability
from napari_lung_unet.nn.refine_learned import redrawn, refiner_from_parent, side_window
from napari_lung_unet.store.atomic import atomic_path
from napari_lung_unet.settings import bundled_model_dir

from .augment import AugmentConfig, augment
from .data import ArrayData, load_arrays, split_convention, split_of_run, tag_conventions
from .metrics import dice_bce_loss

MIN_REGION = 20.0  # px at 384²: a quarter of the reviewer's brush disc (bench/_reviewer.py)
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


@dataclass
class Episode:
    """One case's click sequence: the image and truth at the input size, the mask as it stands, the clicks so far."""

    image: torch.Tensor  # S×S
    truth: np.ndarray  # S×S bool
    mask: np.ndarray  # S×S bool: the proposal, then each click's answer merged in
    output: int  # the proposal's convention (the network's output)
    clicks: list[tuple[int, int, bool]] = field(default_factory=list)  # (row, col, positive) at the input size


def episode(data: ArrayData, props: torch.Tensor, i: int, rng: random.Random, augmenting: bool, default_share: float = 0.0) -> Episode:
    """Case ``i`` with one of its proposals: output 0 (the default convention, what the dock proposes)
    with ``default_share``, else any."""
    k = 0 if rng.random() < default_share else rng.randrange(props.shape[1])
    image, truth, prev = data.images[i], data.masks[i], props[i, k].float()
    if augmenting:
        seed = rng.randrange(1 << 30)
        image, truth = augment(image, truth, LIGHT, torch.Generator().manual_seed(seed))
        # the same seed draws the same geometry first: the previous mask moves with the image
        prev = augment(prev, prev, LIGHT, torch.Generator().manual_seed(seed))[1]
    return Episode(image, truth.numpy() > 0.5, prev.numpy() > 0.5, k)


def click_next(ep: Episode) -> np.ndarray | None:
    """Click the deepest point of the largest wrong region (appended to ``ep.clicks``); that region, or None."""
    region = largest_region(ep.mask ^ ep.truth, MIN_REGION)
    if region is not None:
        r, c = click_point(region)
        ep.clicks.append((r, c, bool(ep.truth[r, c])))
    return region


def network_input(ep: Episode, window: tuple[slice, slice]) -> torch.Tensor:
    """4×H×W: the image, the current mask and every click so far (positive, negative) inside ``window``."""
    shape = (window[0].stop - window[0].start, window[1].stop - window[1].start)
    maps = click_maps([(float(r), float(c), s) for r, c, s in ep.clicks], shape, (window[0].start, window[1].start))
    return torch.cat([ep.image[window][None], torch.from_numpy(ep.mask[window].astype(np.float32))[None], maps])


@torch.inference_mode()
def answer_clicks(model: UNet, eps: list[Episode], batch: int = 8) -> None:
    """The network's answer to each episode's last click, merged as at inference (``redrawn``); eval mode."""
    was_training = model.training
    model.eval()
    size = eps[0].truth.shape if eps else (0, 0)
    for i in range(0, len(eps), batch):
        part = eps[i : i + batch]
        windows = [side_window(ep.clicks[-1][1], size) for ep in part]
        x = torch.stack([network_input(ep, w) for ep, w in zip(part, windows)])
        k = torch.tensor([ep.output for ep in part])
        drawn = model(x, k).gather(1, k[:, None, None, None].expand(-1, 1, *x.shape[-2:]))[:, 0] > 0
        for ep, w, d in zip(part, windows, drawn.numpy()):
            r, c, positive = ep.clicks[-1]
            ep.mask[w] = redrawn(d, ep.mask[w], (r - w[0].start, c - w[1].start), positive)
    model.train(was_training)


def play_earlier_clicks(model: UNet, eps: list[Episode], n: int, rng: random.Random, self_share: float) -> None:
    """``n`` rounds of clicks before the trained one: each answered by the network (``self_share``) or by
    the true fix of its region."""
    for _ in range(n):
        by_model = []
        for ep in eps:
            region = click_next(ep)
            if region is None:
                continue
            if rng.random() < self_share:
                by_model.append(ep)
            else:
                ep.mask = np.where(region, ep.truth, ep.mask)
        answer_clicks(model, by_model)


def training_batch(
    model: UNet, eps: list[Episode], rng: random.Random, max_clicks: int, self_share: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs B×4×H×W, targets B×1×H×W (the true lung on the clicked side) and outputs B of one batch:
    every episode gets the same number of earlier clicks, 0 to ``max_clicks`` - 1 (RITM draws it per batch)."""
    play_earlier_clicks(model, eps, rng.randrange(max(max_clicks, 1)), rng, self_share)
    xs, ys = [], []
    for ep in eps:
        col = ep.clicks[-1][1] if click_next(ep) is not None else rng.randrange(ep.truth.shape[1])
        window = side_window(col, ep.truth.shape)  # nothing left wrong: a side, to copy the mask there
        xs.append(network_input(ep, window))
        ys.append(torch.from_numpy(ep.truth[window].astype(np.float32))[None])
    return torch.stack(xs), torch.stack(ys), torch.tensor([ep.output for ep in eps])


def click_success(model: UNet, data: ArrayData, props: torch.Tensor, outputs: int = 0) -> tuple[float, float]:
    """First clicks on each case and proposal convention (or only the first ``outputs``): the share that
    leave at most half the clicked region wrong, and the share of all wrong pixels they remove."""
    eps, regions, before = [], [], []
    for i in range(len(data)):
        t = data.masks[i].numpy() > 0.5
        for k in range(outputs or props.shape[1]):
            ep = Episode(data.images[i], t, props[i, k].numpy().copy(), k)
            wrong = int((ep.mask ^ t).sum())
            region = click_next(ep)
            if region is not None:
                eps.append(ep)
                regions.append(region)
                before.append(wrong)
    answer_clicks(model, eps)
    hits = sum(int(((ep.mask != ep.truth) & region).sum() <= region.sum() / 2) for ep, region in zip(eps, regions))
    fixed = sum(b - int((ep.mask ^ ep.truth).sum()) for ep, b in zip(eps, before))
    return hits / max(len(eps), 1), fixed / max(sum(before), 1)


def schedule(lr: float, step: int, done: float) -> float:
    """A short warm-up, then cosine to zero at the end of the budget (``done`` in [0, 1])."""
    return lr * min(1.0, step / 20) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))


def save_checkpoint(path: Path, state: dict) -> None:
    """Replace ``path`` atomically: a run killed mid-write leaves the previous checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(f"--resume: no checkpoint at {path}")
    return torch.load(path, weights_only=True)  # tensors, numbers, lists and the RNG tuples: no pickle of code


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", default=[])
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--parent", default=str(bundled_model_dir()))
    ap.add_argument("--steps", type=int, default=600, help="the schedule's length in steps")
    ap.add_argument("--minutes", type=float, default=0.0, help="a time budget: the learning rate anneals over it (0: over --steps)")
    ap.add_argument("--stop-at", type=int, default=0, help="stop after this step (checkpointed), to resume later on the same schedule")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--version", default="refiner-1")
    ap.add_argument("--init", default="", help="start from this refiner's weights instead of the parent's")
    ap.add_argument("--default-share", type=float, default=0.0, help="share of samples proposing in the default convention")
    ap.add_argument("--repeat-other", type=int, default=1, help="draw cases of the other convention this many times as often")
    ap.add_argument("--max-clicks", type=int, default=3, help="the trained click is the 1st to this one")
    ap.add_argument("--self-share", type=float, default=0.5, help="share of earlier clicks the network answers (else the true fix)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not args.data and not (args.cache and args.cache.is_file()):
        ap.error("--data is required unless --cache names a prepared file")
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    parent = load_model(args.parent)
    sets = prepared(parent, args.data, args.cache)
    (train, train_props), (val, val_props) = sets["train"], sets["val"]
    model = load_model(args.init).model if args.init else refiner_from_parent(parent)
    # cases drawn in the other convention (whole-lung): where a default proposal is most wrong
    pool = [i for i in range(len(train)) for _ in range(args.repeat_other if train.output_of(i) != 0 else 1)]
    # with mostly default proposals in training, the default ones select the weights too
    judged = 1 if args.default_share >= 0.5 else 0
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    checkpoint = args.output / CHECKPOINT_NAME
    if args.resume:
        state = load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rng.setstate(_as_tuple(state["python_rng"]))
        torch.set_rng_state(state["torch_rng"])
        first, history, best, elapsed = state["step"] + 1, state["history"], state["best"], state["seconds"]
        best_state = state["best_model"]
        print(f"resumed at step {state['step']} (best val click success {best:.3f})", flush=True)
    else:
        best, fixed = click_success(model, val, val_props, judged)
        print(f"step 0: val click success {best:.3f}, wrong pixels fixed {fixed:.3f} (the starting weights)", flush=True)
        history = [{"step": 0, "val_click_success": best, "val_fixed": fixed}]
        best_state = {k: v.clone() for k, v in model.state_dict().items()}
        first, elapsed = 1, 0.0
    model.train()
    t_run = time.time()
    t0, step = t_run - elapsed, first - 1  # t0: as if the run had never stopped (a --minutes budget counts all of it)
    for step in range(first, args.steps + 1):
        eps = [episode(train, train_props, rng.choice(pool), rng, True, args.default_share) for _ in range(args.batch_size)]
        x, y, k = training_batch(model, eps, rng, args.max_clicks, args.self_share)
        logits = model(x, k).gather(1, k[:, None, None, None].expand(-1, 1, *x.shape[-2:]))
        loss = dice_bce_loss(logits, y)
        opt.zero_grad()
        loss.backward()
        done = max(step / args.steps, (time.time() - t0) / (60 * args.minutes) if args.minutes else 0.0)
        for group in opt.param_groups:
            group["lr"] = schedule(args.lr, step, done)
        opt.step()
        if step % 10 == 0:
            per = (time.time() - t_run) / (step - first + 1)
            print(f"step {step} loss {loss.item():.4f} {per:.2f} s/step, {100 * done:.1f} % done", flush=True)
        last = done >= 1.0 or step == args.steps or step == args.stop_at
        if step % args.eval_every == 0 or (last and step == args.steps):
            score, fixed = click_success(model, val, val_props, judged)
            history.append({"step": step, "val_click_success": score, "val_fixed": fixed, "hours": round((time.time() - t0) / 3600, 2)})
            print(f"step {step}: val click success {score:.3f}, wrong pixels fixed {fixed:.3f}", flush=True)
            if score > best:
                best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
                save_refiner(args, parent, model, best, history, step, time.time() - t0)
        if step % args.checkpoint_every == 0 or last:
            save_checkpoint(checkpoint, {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "python_rng": rng.getstate(),
                "torch_rng": torch.get_rng_state(), "history": history, "best": best, "best_model": best_state,
                "seconds": time.time() - t0,
            })
        if last:
            break
    final = refiner_from_parent(parent)
    final.load_state_dict(best_state)
    save_refiner(args, parent, final, best, history, step, time.time() - t0)
    print(f"saved {args.output} at step {step} (val click success {best:.3f})", flush=True)
    return args.output


CHECKPOINT_NAME = "checkpoint.pt"


def _as_tuple(state: object) -> object:
    """random.setstate wants the tuples it gave; a checkpoint may hand lists back."""
    return tuple(_as_tuple(v) for v in state) if isinstance(state, (list, tuple)) else state


def save_refiner(args: argparse.Namespace, parent: LoadedModel, model: UNet, best: float, history: list, step: int, seconds: float) -> None:
    """The refiner as a model folder at ``args.output`` (weights, then its card)."""
    was_training = model.training
    model.eval()
    card = ModelCard(
        version=args.version, architecture=model.config, input_size=parent.card.input_size,
        normalisation=parent.card.normalisation, threshold=parent.card.threshold, training_data=parent.card.training_data,
        parent=parent.card.version, created=utc_now(), conventions=list(parent.card.conventions),
        metrics={"val_click_success": best, "history": history},
        extra={"refiner": True, "refines": parent.card.version, "window": "side", "steps": step, "minutes_budget": args.minutes,
               "init": args.init or None, "default_share": args.default_share, "repeat_other": args.repeat_other,
               "max_clicks": args.max_clicks, "self_share": args.self_share, "batch_size": args.batch_size, "lr": args.lr,
               "schedule_steps": args.steps, "data": args.data, "minutes": round(seconds / 60, 1),
               "reproduce": "python -m training.refiner_train (training/refiner_train.py)"},
    )
    save_model(args.output, model, card)
    model.train(was_training)


if __name__ == "__main__":
    main()
