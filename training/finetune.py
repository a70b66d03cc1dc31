"""Fine-tune a registry model on accepted corrections, then promote it only if a gate says it is no worse.

The steps: find the data (corrections split into train and held-out, the base data when it is
on disk, the user's uncorrected images when given, the Fisher reference shipped beside the
weights), train a candidate, gate it against its parent, register it. Protection against
forgetting does not depend on the base data being present: the Fisher penalty (EWC) pulls the
weights that mattered for the original data back towards the parent's. What the gate could
and could not check is in the result's ``checks`` and ``summary``; see training/gate.py.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from napari_lung_unet.nn.card import ModelCard, utc_now
from napari_lung_unet.nn.device import resolve_device
from napari_lung_unet.nn.model_io import LoadedModel
from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.nn.registry import PromotionConflict, Registry
from napari_lung_unet.settings import corrections_dir
from napari_lung_unet.store.corrections import RECORDS
from napari_lung_unet.store.snapshot import Snapshot, take_snapshot

from . import gate
from .data import ArrayData, DatasetError, Pair, load_arrays
from .evaluate import LoadedCase, load_cases
from .finetune_data import (
    HOLDOUT_FRACTION, Reference, base_roots, base_split, correction_cases, correction_pairs, every, fair_subset, find_reference,
    lineage_trained, mixed_conventions, prepare_unlabeled, replay_subset, split_for_parent, unlabeled_images,
)
from .feature_cache import REUSE
from .gate_scores import encode
from .reference_set import reference_cases
from .finetune_checks import gate_checks
from .finetune_limits import check_config, check_step_memory
from .finetune_loop import FinetuneCancelled, LoopSettings, train_candidate

Progress = Callable[[dict], None]
__all__ = ["FinetuneCancelled", "FinetuneConfig", "FinetuneResult", "fair_subset", "finetune"]


@dataclass
class FinetuneConfig:
    corrections: str | None = None  # default: the widget's store under LUNG_UNET_HOME
    base_version: str | None = None  # default: the current version
    # None: chosen by whether base data is replayed (bench/finetune_levers.py, docs/benchmarks.md).
    # With replay, 50 steps of 2 corrections + 3 replayed images (130 measured the best gain/forgetting
    # trade on default-2, ~3 minutes on 2 CPU cores; cut, with the encoder's features cached, the
    # gate's encoder pass shared and 256-px windows (``crop``), to 69 s idle). Without it, 60 steps of 3
    # corrections: 43 s instead of 168 s for +5.7 instead of +7.0 points on a new site (default-2);
    # that candidate is unverified whatever it learnt.
    steps: int | None = None
    batch_size: int | None = None
    lr: float = 7e-4
    replay_ratio: float = 1.5  # replay images per correction in each batch, when the base data is on disk
    # share of the replayed base images drawn in the corrections' own convention(s), where the base data has
    # some (0: an even spread over all of it): those are the cases the gate checks a convention's forgetting on.
    # 0.5 (bench/new_site.py, docs/benchmarks.md): at a new site the even spread's candidate gained +1.7 points
    # and was rejected for the old whole-lung cases (0.942 -> 0.935); with 0.5 the same gain was promoted,
    # Montgomery +0.3 points
    replay_match: float = 0.5
    replay: list[str] | None = None  # base dataset folders; default: the parent's training data if found
    unlabeled: list[str] | None = None  # the user's uncorrected X-rays: pseudo-labelled replay and an agreement check
    max_unlabeled: int = 24
    ewc: float = 0.0  # strength of the Fisher pull towards the parent; 0 turns it off
    train_layers: str = "decoder"  # "decoder" (frozen encoder: measured to forget far less) or "all"
    # with a frozen encoder: augmented copies of each image encoded once, before the steps, each drawn
    # about this many times (0: every step augments afresh and runs the whole network; training/feature_cache.py)
    feature_reuse: float = REUSE
    crop: int = 256  # with cached features, each step trains on a window this wide (model input pixels; 0: whole)
    # items per batch that hold the other conventions at the parent's masks (finetune_loop.LoopSettings).
    # None: 1 with base data replayed, 2 without, where they are the only anchor (docs/benchmarks.md,
    # "fine-tune crops and the other convention": 2 with replay failed the held-out check once)
    keep_others: int | None = None
    holdout_fraction: float = HOLDOUT_FRACTION  # rounded down, at least 1: see finetune_data.choose_holdout
    tolerance: float = 0.005  # allowed mean-Dice loss on the base validation set
    dataset_tolerance: float = 0.01  # allowed loss on any one base dataset: looser, as 12 cases are noisy
    # the held-out corrections must gain more than their noise: training/gain_test.py
    # A collapse detector, not a fine measure: on default-2 ordinary fine-tunes drifted 0.7e-6 to 5.6e-4
    # nats per pixel (0.1-82 per 384² image) whatever they cost Montgomery (docs/benchmarks.md); it
    # is there to catch a model trained to collapse (tests/test_finetune.py).
    forgetting_budget: float = 1e-3  # allowed estimated drift on the original training X-rays (nats per pixel)
    agreement_floor: float = 0.90  # least mean Dice with the parent on the user's uncorrected images
    max_base_val: int = 48  # cap the gate's base set so a fine-tune stays quick on a laptop
    reference_tolerance: float = 0.01  # allowed Dice loss on the shipped reference set, per convention
    max_reference: int = 16  # reference images scored per convention (of 32 shipped)
    promote: bool = False  # the user's explicit yes for when the base data could not be measured
    # the corrections' convention: tags a plain images/+masks/ folder; in a store, takes only the
    # records accepted in it (a record's own convention is never overridden). None: each its own
    convention: str | None = None
    device: str = "auto"
    seed: int = 0
    home: str | None = None

    def __post_init__(self) -> None:
        check_config(self)  # the same ranges as lung-unet finetune's options (training/finetune_limits.py)


@dataclass
class FinetuneResult:
    version: str
    parent: str
    status: gate.Status
    reason: str
    checks: list[dict]
    summary: list[str]
    before: dict[str, float]
    after: dict[str, float]
    seconds: float
    n_train: int
    n_holdout: int
    extra: dict = field(default_factory=dict)
    # what it trained on, for the verdict: "trained on 37 cases accepted up to 10:42" ("" for a plain folder)
    snapshot: str = ""

    @property
    def promoted(self) -> bool:
        return self.status == "promoted"


@dataclass
class Inputs:
    """Everything the candidate is trained on and checked with, read once."""

    store: Path  # the live store (named in the candidate's card); the cases are read from ``snapshot``
    train_pairs: list[Pair]
    holdout_pairs: list[Pair]
    holdout_trained: bool
    corrections: ArrayData
    replay: ArrayData | None
    n_base_replay: int
    holdout: list[LoadedCase]
    base_val: list[LoadedCase]
    unlabeled: list[np.ndarray]
    reference: Reference | None
    warnings: list[str] = field(default_factory=list)  # said in the summary, above the checks
    shipped: list[LoadedCase] = field(default_factory=list)  # the reference X-rays shipped with the package, in each known convention
    left_out: list[Pair] = field(default_factory=list)  # corrections in a convention the parent has no output for: never trained as another
    not_asked: list[Pair] = field(default_factory=list)  # corrections accepted in another convention than --convention asked
    snapshot: Snapshot | None = None  # the store's cases as they were when the fine-tune began

    def snapshot_line(self) -> str:
        """``trained on 37 cases accepted up to 10:42``: what the verdict is about, in the dock's words."""
        if self.snapshot is None:
            return ""
        n = len(self.train_pairs)
        line = f"trained on {n} case{'s' * (n != 1)} accepted up to {self.snapshot.up_to()}"
        if not self.holdout_trained and self.holdout_pairs:
            line += f" ({len(self.holdout_pairs)} more held back to check it)"
        return line


def _gather(cfg: FinetuneConfig, registry: Registry, parent: LoadedModel, emit: Progress, store: Path,
            snapshot: Snapshot | None) -> Inputs:
    card = parent.card
    emit({"stage": "loading", "message": "reading corrections"})
    try:
        pairs, other = correction_pairs(snapshot.root if snapshot is not None else store, cfg.convention)
    except DatasetError as exc:
        raise DatasetError(f"no corrections to fine-tune on: {exc}") from None
    if not pairs:
        raise DatasetError(f"no corrections to fine-tune on: none of the {len(other)} in {store} was accepted as "
                           f"{cfg.convention} ({_counted(other)}); a record's own convention is kept")
    known = card.conventions
    left_out = [p for p in pairs if p.convention not in known]
    pairs = [p for p in pairs if p.convention in known]
    if not pairs:
        raise DatasetError(f"no corrections to fine-tune on: {card.version} knows only {', '.join(known)}, and all "
                           f"{len(left_out)} corrections were accepted as {', '.join(sorted({p.convention for p in left_out}))}")
    train_pairs, holdout_pairs, holdout_trained = split_for_parent(pairs, cfg.holdout_fraction, lineage_trained(registry, card))
    warnings = [w for w in [mixed_conventions(correction_cases(pairs))] if w]
    for warning in warnings:
        emit({"stage": "loading", "message": f"warning: {warning}"})
    base_train, base_val = (in_conventions(part, known) for part in base_split(base_roots(cfg.replay, card), card))
    size, norm = card.input_size, card.normalisation
    corrections = load_arrays(train_pairs, size, norm, show_progress=False, conventions=known)
    n_replay = min(len(base_train), math.ceil(len(train_pairs) * cfg.replay_ratio * 4))
    chosen = replay_subset(base_train, n_replay, {p.convention for p in train_pairs}, cfg.replay_match)
    replay = load_arrays(chosen, size, norm, show_progress=False, conventions=known) if n_replay else None
    unlabeled = unlabeled_images(cfg.unlabeled, pairs, cfg.max_unlabeled) if cfg.unlabeled else []
    return Inputs(store, train_pairs, holdout_pairs, holdout_trained, corrections, replay, n_replay,
                  load_cases(holdout_pairs), load_cases(fair_subset(base_val, cfg.max_base_val)), unlabeled,
                  find_reference(registry, card, parent.model), warnings, reference_cases(known, cfg.max_reference), left_out, other,
                  snapshot)


def _counted(pairs: list[Pair]) -> str:
    """``3 lung-fields, 1 whole-lung``: how many of ``pairs`` are drawn in each convention."""
    return ", ".join(f"{n} {c}" for c, n in sorted(Counter(p.convention for p in pairs).items()))


def in_conventions(pairs: list[Pair], known: list[str]) -> list[Pair]:
    return [p for p in pairs if p.convention in known]


def _pseudo_labelled(predictor: Predictor, images: list[np.ndarray], card: ModelCard) -> ArrayData | None:
    """The user's uncorrected images with the parent's own masks, in every convention it knows:
    replay that needs no base data (distillation with hard labels), so what the parent did on them
    is kept in each convention, not only in the one the corrections teach."""
    x = prepare_unlabeled(images, card)
    if x is None:
        return None
    parts = [ArrayData(x, torch.from_numpy(predictor.for_convention(c).network(x) > card.threshold).float(),
                       [f"unlabeled-{i}" for i in range(len(x))], torch.full((len(x),), i, dtype=torch.int64))
             for i, c in enumerate(card.conventions)]
    return concat(parts)


def concat(parts: list[ArrayData]) -> ArrayData:
    return ArrayData(torch.cat([p.images for p in parts]), torch.cat([p.masks for p in parts]),
                     [c for p in parts for c in p.case_ids],
                     torch.cat([p.outputs if p.outputs is not None else torch.zeros(len(p), dtype=torch.int64) for p in parts]))


def _summary(inputs: Inputs, checks: list[gate.Check], reason: str, parent: str, version: str, ewc: float,
             quality_of: str | None = None) -> list[str]:
    n_corr = len(inputs.train_pairs) + (0 if inputs.holdout_trained else len(inputs.holdout_pairs))
    trained = f"Trained {version} from {parent} on {len(inputs.train_pairs)} of your {n_corr} corrections"
    if not inputs.holdout_trained:
        trained += f" ({len(inputs.holdout_pairs)} held back to check it)"
    extras = []
    if inputs.n_base_replay:
        extras.append(f"{inputs.n_base_replay} images of the original training data replayed")
    if inputs.unlabeled:
        extras.append(f"{len(inputs.unlabeled)} of your uncorrected images replayed with {parent}'s masks")
    if inputs.reference is not None and ewc:
        extras.append(f"weights held near {parent}'s by {inputs.reference.source}")
    lines = [trained + ("; " + "; ".join(extras) if extras else "") + "."]
    if inputs.snapshot is not None:
        lines.append(f"A snapshot of your corrections: {inputs.snapshot_line()}; cases accepted since are left for the next fine-tune.")
    lines += [f"Warning: {w}." for w in inputs.warnings]
    if inputs.left_out:
        lines.append(f"Left out {len(inputs.left_out)} corrections accepted as {', '.join(sorted({p.convention for p in inputs.left_out}))}, "
                     f"which {parent} does not know: a correction is never trained as the other convention.")
    if inputs.not_asked:
        lines.append(f"Set aside {len(inputs.not_asked)} corrections accepted as {', '.join(sorted({p.convention for p in inputs.not_asked}))}: "
                     f"only those accepted as {inputs.train_pairs[0].convention} were asked for (--convention).")
    lines += [c.line() for c in checks]
    lines.append(reason[0].upper() + reason[1:] + ".")
    if quality_of:  # issue 29: a fine-tune re-calibrates expected Dice, or says it did not
        lines.append(f"Expected Dice: {version} keeps {parent}'s calibration (fitted on {quality_of}'s outputs); "
                     "a fine-tune does not re-fit it.")
    return lines


def _gate_seconds(predictor: Predictor, inputs: Inputs) -> float:
    """How long the gate will take after training, measured before it: one prediction of each set
    the gate scores, times the predictions it makes of that set (the parent's and the candidate's),
    less the encoder pass the two share (training/gate_scores.py)."""
    seconds = 0.0
    sets = ([c.image for c in inputs.holdout], [c.image for c in inputs.base_val], [c.image for c in inputs.shipped], inputs.unlabeled)
    first = next((images[0] for images in sets if images), None)
    if first is not None:
        # untimed: a process's first prediction pays one-off set-up, and timing it multiplied that by every
        # case the gate scores (the walk-through's ETA said 108 s with 51 s left)
        predictor.predict(first)
    for images in sets:
        if images:
            start = time.perf_counter()
            x, _ = predictor.prepare(images[0])
            predictor.predict(images[0])
            whole = time.perf_counter() - start
            start = time.perf_counter()
            encode(predictor, x)
            shared = time.perf_counter() - start
            seconds += (2 * whole - shared) * len(images)
    return seconds


def _schedule(cfg: FinetuneConfig, replaying: bool) -> tuple[int, int, int]:
    """(steps, batch size, other-convention items per batch): the config's, or the measured defaults
    for with / without replay."""
    steps = cfg.steps if cfg.steps is not None else (50 if replaying else 60)
    batch = cfg.batch_size if cfg.batch_size is not None else (5 if replaying else 3)
    keep_others = cfg.keep_others if cfg.keep_others is not None else (1 if replaying else 2)
    return steps, batch, keep_others


def finetune(cfg: FinetuneConfig, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> FinetuneResult:
    t0 = time.perf_counter()
    emit = progress or (lambda event: None)
    stop = should_stop or (lambda: False)
    registry = Registry(cfg.home)
    parent = registry.load(cfg.base_version or registry.current_version())
    card = parent.card
    if cfg.convention is not None:
        card.output_for(cfg.convention)  # a parent that does not know it refuses by name, before anything is read or trained
    # before anything is read: the largest batch either schedule (with or without replay) may take
    either = [_schedule(cfg, replaying) for replaying in (True, False)]
    check_step_memory(card, max(b for _, b, _ in either), max(k for _, _, k in either),
                      cfg.crop, cfg.train_layers != "all" and cfg.feature_reuse > 0, resolve_device(cfg.device))
    store = Path(cfg.corrections) if cfg.corrections else corrections_dir()
    # the store's cases as they are now, linked under its lock: accepts and re-accepts go on meanwhile,
    # and none of them can delete a file this fine-tune is about to read (store/snapshot.py)
    snapshot = take_snapshot(store) if (store / RECORDS).is_dir() else None
    try:
        return _finetune(cfg, registry, parent, _gather(cfg, registry, parent, emit, store, snapshot), emit, stop, t0)
    finally:
        if snapshot is not None:
            snapshot.close()


def _finetune(cfg: FinetuneConfig, registry: Registry, parent: LoadedModel, inputs: Inputs, emit: Progress,
              stop: Callable[[], bool], t0: float) -> FinetuneResult:
    card = parent.card
    device = resolve_device(cfg.device)

    parent_predictor = Predictor(parent, device=device)
    pseudo = _pseudo_labelled(parent_predictor, inputs.unlabeled, card)
    replay = inputs.replay if pseudo is None else pseudo if inputs.replay is None else concat([inputs.replay, pseudo])
    steps, batch, keep_others = _schedule(cfg, replay is not None)
    n_replay = round(batch * cfg.replay_ratio / (1 + cfg.replay_ratio)) if replay is not None else 0
    settings = LoopSettings(steps, batch, cfg.lr, min(n_replay, batch - 1), cfg.train_layers, cfg.ewc, cfg.seed,
                            after_s=_gate_seconds(parent_predictor, inputs), reuse=cfg.feature_reuse,
                            crop=cfg.crop, keep_others=keep_others)
    model = train_candidate(parent.model, inputs.corrections, replay, inputs.reference, settings, device, emit, stop)

    version = registry.new_version_name()
    cand_card = ModelCard(
        version=version, architecture=card.architecture, input_size=card.input_size, normalisation=card.normalisation,
        threshold=card.threshold, training_data=[*card.training_data, f"corrections:{inputs.store}"], parent=card.version,
        created=utc_now(), status="candidate", conventions=list(card.conventions),
        # expected_dice keeps the parent's calibration: its model_version names the weights it was fitted on
        quality=card.quality,
        extra={**{k: v for k, v in card.extra.items() if k == "train_config"},
               "finetune": {"steps": steps, "lr": cfg.lr, "batch_size": batch, "replay_ratio": cfg.replay_ratio,
                            "train_layers": cfg.train_layers, "ewc": cfg.ewc, "n_train": len(inputs.train_pairs),
                            "n_holdout": len(inputs.holdout_pairs), "replay_images": inputs.n_base_replay,
                            "unlabeled_images": len(inputs.unlabeled), "convention": cfg.convention,
                            "train_cases": [p.case_id for p in inputs.train_pairs], "holdout_cases": [p.case_id for p in inputs.holdout_pairs]}},
    )
    emit({"stage": "gate", "message": f"checking candidate {version} against {card.version}"})
    checks, before, after = gate_checks(cfg, inputs, parent_predictor, Predictor(LoadedModel(model, cand_card, Path()), device=device), model)
    status, reason = gate.decide(checks, cfg.promote, card.version)
    if stop():
        raise FinetuneCancelled("fine-tuning cancelled; the current model is unchanged")
    # "promoted" only once the pointer has switched (Registry.promote writes it)
    cand_card.status = "candidate" if status == "promoted" else status
    cand_card.notes = reason
    cand_card.metrics = {"before": before, "after": after, "checks": [c.to_dict() for c in checks]}
    emit({"stage": "register", "message": f"registering {version} ({status})"})
    registry.add(model.cpu(), cand_card)
    if status == "promoted":
        try:
            registry.promote(version, expected_current=card.version)
        except PromotionConflict as exc:
            status, reason = "rejected", str(exc)
            cand_card.status, cand_card.notes = "rejected", reason
            registry.update_card(cand_card)
    result = FinetuneResult(version, card.version, status, reason, [c.to_dict() for c in checks],
                            _summary(inputs, checks, reason, card.version, version, cfg.ewc,
                                     card.quality.model_version if card.quality is not None else None), before, after,
                            time.perf_counter() - t0, len(inputs.train_pairs), len(inputs.holdout_pairs),
                            snapshot=inputs.snapshot_line())
    emit({"stage": "done", "result": result})
    return result
