"""Fine-tuning with the promotion gate, on phantoms with a real tiny U-Net."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch

from napari_lung_unet.nn.predict import Predictor
from napari_lung_unet.nn.registry import Registry
from training.data import DatasetError, Pair
from training import gate
from training.finetune_checks import _agreement
from training.finetune import FinetuneCancelled, FinetuneConfig, fair_subset, finetune

from phantom_models import TINY_BUDGET, phantom_folder, wider_lungs_store


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return wider_lungs_store(tmp_path / "corrections")


def _cfg(store: Path, **kw) -> FinetuneConfig:
    base = dict(corrections=str(store), steps=40, batch_size=4, lr=3e-3, replay=[], device="cpu", forgetting_budget=TINY_BUDGET)
    base.update(kw)
    return FinetuneConfig(**base)


@pytest.fixture
def trained_parent(isolated_home: Path, phantom_parent: Path) -> Registry:
    """A registry whose current model segments phantoms (a random frozen encoder would learn nothing)."""
    import shutil

    registry = Registry()
    registry.models_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(phantom_parent, registry.models_dir / "parent")
    registry.set_current("parent")
    return registry


def test_without_base_data_a_good_candidate_waits_for_a_yes(trained_parent: Registry, store: Path) -> None:
    """After `pip install` the base data is not on disk: nothing measured the model on what it
    did well, so the candidate is kept unverified and current stays, unless the user says yes."""
    events: list[dict] = []
    result = finetune(_cfg(store), progress=events.append)
    assert result.status == "unverified" and not result.promoted, result.summary
    assert result.after["holdout_dice"] > result.before["holdout_dice"]
    assert trained_parent.current_version() == "parent"
    assert trained_parent.card(result.version).status == "unverified"
    text = "\n".join(result.summary)
    assert f"on {result.n_train} of your 8 corrections ({result.n_holdout} held back" in text and result.n_holdout >= 1
    assert "NOT CHECKED  original validation data: not on this computer" in text
    assert "not promoted yet" in text.lower()
    train_events = [e for e in events if e["stage"] == "train"]
    assert len(train_events) == 40 and "eta_s" in train_events[0]

    yes = finetune(_cfg(store, promote=True))
    assert yes.status == "promoted" and trained_parent.current_version() == yes.version
    card = trained_parent.card(yes.version)
    assert card.parent == "parent" and card.status == "promoted"
    assert card.metrics["after"]["holdout_dice"] == pytest.approx(yes.after["holdout_dice"])
    assert "explicit yes" in yes.reason


@pytest.mark.parametrize("layers", ["decoder", "all"])
def test_a_fine_tune_keeps_every_batchnorm_statistic_and_learns_in_their_scales(trained_parent: Registry, store: Path, layers: str) -> None:
    """Running statistics replaced by a few batches of windows moved every output; the decoder's
    normalisation scales and shifts still train. With the encoder free too (a trained parent)."""
    result = finetune(_cfg(store, train_layers=layers))
    parent, candidate = (trained_parent.load(v).model.state_dict() for v in ("parent", result.version))
    stats = [k for k in parent if k.endswith(("running_mean", "running_var"))]
    assert any(k.startswith("decoders.") for k in stats)
    assert all(torch.equal(parent[k], candidate[k]) for k in stats)
    scales = [k for k in parent if k.startswith("decoders.") and k.endswith(".weight") and parent[k].ndim == 1]
    assert scales and any(not torch.equal(parent[k], candidate[k]) for k in scales)


def test_a_tail_fine_tune_frees_only_the_encoders_deepest_block(trained_parent: Registry, store: Path) -> None:
    """`--train-layers tail`: the decoder and the encoder's last block learn, on features cached below it."""
    result = finetune(_cfg(store, train_layers="tail"))
    parent, candidate = (trained_parent.load(v).model.state_dict() for v in ("parent", result.version))
    deepest = max(int(k.split(".")[1]) for k in parent if k.startswith("encoders."))
    changed = {k for k in parent if not torch.equal(parent[k], candidate[k])}
    assert any(k.startswith(f"encoders.{deepest}.") for k in changed)
    assert not any(k.startswith("encoders.") and not k.startswith(f"encoders.{deepest}.") for k in changed)
    assert not any(k.endswith(("running_mean", "running_var")) for k in changed)


def test_with_base_data_a_good_candidate_is_promoted(base_registry: Registry, tmp_path: Path) -> None:
    """An untrained parent and corrections in the base data's own convention: the candidate gains on
    both, the base data measured it, so it is promoted without asking."""
    corrections = phantom_folder(tmp_path / "corrections", 8, seed=30)
    base = phantom_folder(tmp_path / "base", 24, seed=100)
    result = finetune(_cfg(corrections, replay=[str(base)], train_layers="all"))
    assert result.status == "promoted", result.summary
    assert base_registry.current_version() == result.version
    checked = {c["name"]: c for c in result.checks if c["kind"] == "base"}
    assert len(checked) == 1 and next(iter(checked.values()))["passed"] is True  # one dataset: its own check
    assert result.after["base_val_dice"] >= result.before["base_val_dice"] - 0.005
    assert base_registry.card(result.version).extra["finetune"]["replay_images"] > 0
    assert "images of the original training data replayed" in result.summary[0]


def test_worse_candidate_is_rejected_and_current_stays(trained_parent: Registry, store: Path) -> None:
    # first make a decent parent, then wreck it with an absurd learning rate
    good = finetune(_cfg(store, steps=60, promote=True))
    assert good.promoted
    bad = finetune(_cfg(store, lr=50.0, steps=5, promote=True))  # a yes never overrides a failed check
    assert bad.status == "rejected"
    assert trained_parent.current_version() == good.version
    card = trained_parent.card(bad.version)
    assert card.status == "rejected" and "held-out corrections failed" in card.notes


def test_gate_refuses_a_collapsed_model_with_no_base_data(trained_parent: Registry, tmp_path: Path) -> None:
    """Corrections that erase the lungs teach the model to collapse; the held-out corrections
    (empty too) even reward it. With no base data on disk, the Fisher estimate shipped with the
    parent is what catches it, and a user's yes does not override it."""
    wiped = phantom_folder(tmp_path / "wiped", 8, seed=300, empty_masks=True)
    # 60 steps: at 40 the two held-back cases (a quarter, by hash) still had some lung drawn, so no trap
    result = finetune(_cfg(wiped, steps=60, lr=1e-2, ewc=0.0, promote=True))
    checked = {c["name"]: c for c in result.checks}
    assert checked["held-out corrections"]["passed"] is True  # the trap: empty masks "improved"
    assert checked["original validation data"]["passed"] is None
    assert checked["reference set (lung-fields)"]["passed"] is None  # the phantom-trained parent cannot segment it
    assert checked["estimated forgetting"]["passed"] is False
    assert result.status == "rejected" and "estimated forgetting failed" in result.reason
    assert trained_parent.current_version() == "parent"


def test_uncorrected_images_are_replayed_and_checked_for_agreement(trained_parent: Registry, tmp_path: Path) -> None:
    """The same lung-erasing corrections, now with 6 of the user's uncorrected images: replayed with
    the parent's masks, they keep the candidate segmenting them much as the parent did (without them
    it erases every lung there), and the gate measures that agreement on them."""
    wiped = phantom_folder(tmp_path / "wiped", 8, seed=300, empty_masks=True)
    unlabeled = phantom_folder(tmp_path / "worklist", 6, seed=400) / "images"
    images = [iio.imread(p) for p in sorted(unlabeled.iterdir())]
    parent = Predictor(trained_parent.load("parent"), device="cpu")
    alone = finetune(_cfg(wiped, steps=40, lr=1e-2, ewc=0.0))
    assert _agreement(parent, Predictor(trained_parent.load(alone.version), device="cpu"), images) < 0.5
    result = finetune(_cfg(wiped, steps=40, lr=1e-2, ewc=0.0, unlabeled=[str(unlabeled)]))
    checked = {c["name"]: c for c in result.checks}
    agreement = checked["your uncorrected images"]
    assert "on 6 of your uncorrected images" in agreement["what"]
    assert agreement["after"] >= 0.8 and agreement["passed"] is (agreement["after"] >= 0.9)
    assert "6 of your uncorrected images replayed" in result.summary[0]
    assert result.status != "promoted"  # still nothing measured on the original data


def test_gate_decisions() -> None:
    held = gate.holdout_check([0.88, 0.90, 0.92], [0.94, 0.95, 0.96], False, 12, 0.25)
    lf = "lung-fields"
    base = gate.base_checks({("", lf): 0.960, ("montgomery", lf): 0.975, ("shenzhen", lf): 0.957},
                            {("", lf): 0.958, ("montgomery", lf): 0.968, ("shenzhen", lf): 0.957},
                            {("", lf): 48, ("montgomery", lf): 12, ("shenzhen", lf): 36}, 0.005, 0.01)
    assert gate.decide([held, *base], confirmed=False)[0] == "promoted"
    # the user's site must gain more than its noise: a small fall keeps the current model, without calling it worse
    kept = gate.decide([gate.holdout_check([0.9, 0.9, 0.9], [0.897, 0.893, 0.895], False, 12, 0.25), *base], confirmed=False,
                       parent="default-3")
    assert kept[0] == "rejected" and kept[1].startswith("no measurable gain on your cases: kept default-3 (held-out corrections 0.9000 -> 0.8950")
    worse = gate.decide([gate.holdout_check([0.9, 0.9, 0.9], [0.85, 0.86, 0.84], False, 12, 0.25), *base], confirmed=True)
    assert worse[0] == "rejected" and worse[1].startswith("not promoted: held-out corrections failed: 0.9000 -> 0.8500")
    # the only correction, also trained on: it must have been learnt
    assert gate.decide([gate.holdout_check([0.9], [0.9], True, 1, 0.25), *base], confirmed=True)[0] == "rejected"
    missing = gate.not_checked("base", "original validation data", "not on this computer")
    assert gate.decide([held, missing], confirmed=False)[0] == "unverified"
    assert gate.decide([held, missing], confirmed=True)[0] == "promoted"
    assert gate.decide([held, missing, gate.estimate_check(0.5, 0.01, "x")], confirmed=True)[0] == "rejected"


def test_gate_rejects_a_loss_on_one_dataset_that_the_mixed_mean_hides() -> None:
    """A trial lost 1.28 points on Montgomery (12 cases) while the mixed mean moved 0.2."""
    held = gate.holdout_check([0.84, 0.85, 0.86], [0.88, 0.89, 0.90], False, 12, 0.25)
    lf = "lung-fields"
    before = {("", lf): 0.960, ("montgomery", lf): 0.975, ("shenzhen", lf): 0.957}
    after = {("", lf): 0.958, ("montgomery", lf): 0.962, ("shenzhen", lf): 0.957}
    counts = {("", lf): 48, ("montgomery", lf): 12, ("shenzhen", lf): 36}
    status, reason = gate.decide([held, *gate.base_checks(before, after, counts, 0.005, 0.01)], confirmed=False)
    assert status == "rejected" and reason.startswith("not promoted: montgomery validation (lung-fields) failed: 0.9750 -> 0.9620")
    fine = gate.base_checks(before, {**after, ("montgomery", lf): 0.968}, counts, 0.005, 0.01)
    assert gate.decide([held, *fine], confirmed=False)[0] == "promoted"


def test_a_convention_of_one_dataset_is_judged_as_that_dataset() -> None:
    """A new site's base: 42 lung-fields cases of two datasets, 6 whole-lung cases of one. The 6 fall
    0.66 points: within one dataset's tolerance, and not held to the pooled mean's as well."""
    lf, wl = "lung-fields", "whole-lung"
    counts = {("", lf): 42, ("montgomery", lf): 12, ("shenzhen", lf): 30, ("", wl): 6, ("shenzhen", wl): 6}
    before = {("", lf): 0.9664, ("montgomery", lf): 0.9724, ("shenzhen", lf): 0.9640, ("", wl): 0.9416, ("shenzhen", wl): 0.9416}
    after = {**before, ("", wl): 0.9350, ("shenzhen", wl): 0.9350}
    checks = gate.base_checks(before, after, counts, 0.005, 0.01)
    assert [c.name for c in checks] == ["original validation data (lung-fields)", "montgomery validation (lung-fields)",
                                        "shenzhen validation (lung-fields)", "shenzhen validation (whole-lung)"]
    assert all(c.passed for c in checks)
    worse = gate.base_checks(before, {**after, ("", wl): 0.930, ("shenzhen", wl): 0.930}, counts, 0.005, 0.01)
    assert [c.passed for c in worse] == [True, True, True, False]  # past one dataset's point: still rejected


def test_gate_subset_keeps_every_case_of_a_small_dataset() -> None:
    pairs = [Pair(f"m{i}", Path(f"m{i}.png"), (Path(f"m{i}_mask.png"),), "montgomery") for i in range(12)]
    pairs += [Pair(f"s{i}", Path(f"s{i}.png"), (Path(f"s{i}_mask.png"),), "shenzhen") for i in range(65)]
    kept = fair_subset(pairs, 48)
    assert len(kept) == 48
    assert [p.case_id for p in kept if p.dataset == "montgomery"] == [f"m{i}" for i in range(12)]
    assert len({p.case_id for p in kept}) == 48  # the 36 Shenzhen cases are distinct
    assert fair_subset(pairs[:5], 48) == pairs[:5]


def test_replay_base_data_is_used_and_scored(base_registry: Registry, store: Path, phantom_dataset: Path) -> None:
    result = finetune(_cfg(store, replay=[str(phantom_dataset)], steps=10, promote=True))
    assert "base_val_dice" in result.before and "base_val_dice" in result.after
    assert base_registry.card(result.version).extra["finetune"]["replay_images"] > 0


def test_cancel_registers_nothing(base_registry: Registry, store: Path) -> None:
    calls = iter(range(1000))
    with pytest.raises(FinetuneCancelled):
        finetune(_cfg(store), should_stop=lambda: next(calls) >= 5)
    assert [c.version for c in base_registry.cards()] == [base_registry.bundled_version, "base"]
    assert base_registry.current_version() == "base"


def test_no_corrections_gives_clear_error(base_registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no corrections"):
        finetune(_cfg(tmp_path / "nothing"))


def test_flat_folder_as_corrections(base_registry: Registry, phantom_dataset: Path) -> None:
    result = finetune(_cfg(phantom_dataset, steps=5))
    assert result.n_train + result.n_holdout == 6


def test_killed_finetune_leaves_registry_loadable(base_registry: Registry, store: Path, isolated_home: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal
        from training.finetune import FinetuneConfig, finetune
        def progress(event):
            if event["stage"] == "train" and event["step"] == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        finetune(FinetuneConfig(corrections={str(store)!r}, steps=40, batch_size=4, replay=[], device="cpu"), progress)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**__import__("os").environ, "LUNG_UNET_HOME": str(isolated_home)}, timeout=300)
    assert proc.returncode == -9
    # a half-built version folder from an earlier crash must be ignored too
    (base_registry.models_dir / ".ft-crashed.abc").mkdir()
    (base_registry.models_dir / ".ft-crashed.abc" / "weights.safetensors").write_bytes(b"\x00" * 10)
    fresh = Registry()
    assert fresh.current_version() == "base"
    assert fresh.load().card.version == "base"
    assert [c.version for c in fresh.cards()] == [fresh.bundled_version, "base"]


def test_the_seed_decides_the_candidate(trained_parent: Registry, store: Path) -> None:
    """`lung-unet finetune --seed N`: the same seed trains the same weights (a bench repeats a lever
    with other seeds to tell it from noise); another seed, other weights."""
    from napari_lung_unet.cli.dispatch import build_parser
    from napari_lung_unet.cli.finetune import config_from_args

    args = build_parser().parse_args(["finetune", "--corrections", str(store), "--seed", "3"])
    assert config_from_args(args).seed == 3
    weights = [trained_parent.load(finetune(_cfg(store, steps=8, seed=seed)).version).model.state_dict() for seed in (3, 3, 4)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert any(not torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
