"""FiLM conditioning: one model, one decoder modulation per lung convention.

What must hold: a model warm-started from a one-convention parent starts as the parent in every
convention; asking for one output gives the same numbers as computing all of them; and a case
drawn in one convention never trains the other convention's own parameters.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.nn.model import UNet, UNetConfig
from napari_lung_unet.nn.model_io import load_model, save_model
from training.steps import train_step
from training.warm_start import widened

ONE = UNetConfig(base_channels=4, depth=2)
FILM = UNetConfig(base_channels=4, depth=2, out_channels=2, conditioning="film")
BOTH = ["lung-fields", "whole-lung"]


def _parent(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_model(tmp_path / "parent", UNet(ONE), ModelCard(version="parent", architecture=ONE, input_size=32))


def _child(parent: Path) -> UNet:
    loaded = load_model(parent)
    child = UNet(FILM)
    child.load_state_dict(widened(loaded.model.state_dict(), loaded.card, FILM, BOTH, str(parent)))
    return child


def test_a_film_child_starts_as_its_parent_in_both_conventions(tmp_path: Path) -> None:
    parent = _parent(tmp_path)
    child, reference = _child(parent).eval(), load_model(parent).model.eval()
    x = torch.rand(3, 1, 40, 24)
    with torch.inference_mode():
        want, got = reference(x)[:, 0], child(x)
    assert got.shape == (3, 2, 40, 24)
    torch.testing.assert_close(got[:, 0], want)
    torch.testing.assert_close(got[:, 1], want)


def test_asking_for_one_output_gives_that_output_of_all(tmp_path: Path) -> None:
    child = _child(_parent(tmp_path)).eval()
    with torch.no_grad():  # make the two conventions differ, as after training
        for film in child.film:
            film.shift[1].uniform_(-0.5, 0.5)
            film.scale[1].uniform_(0.5, 1.5)
    x = torch.rand(4, 1, 32, 32)
    which = torch.tensor([1, 0, 0, 1])
    with torch.inference_mode():
        every, only = child(x), child(x, which)
    assert (every[:, 0] - every[:, 1]).abs().max() > 1e-3
    torch.testing.assert_close(only[torch.arange(4), which], every[torch.arange(4), which])


def test_a_whole_lung_case_never_trains_the_lung_fields_parameters(tmp_path: Path) -> None:
    child = _child(_parent(tmp_path)).train()
    before = {n: p.detach().clone() for n, p in child.named_parameters()}
    opt = torch.optim.Adam(child.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    x = torch.rand(2, 1, 32, 32)
    y = (torch.rand(2, 1, 32, 32) > 0.5).float()
    for _ in range(3):
        train_step(child, x, y, opt, scaler, None, torch.device("cpu"), outputs=torch.tensor([1, 1]))
    own = {n: p for n, p in child.named_parameters() if n.startswith("film.") or n.startswith("head.")}
    for name, p in own.items():
        row0, row1 = p[0], p[1]
        assert torch.equal(row0, before[name][0]), f"{name}: lung-fields row moved"
        assert not torch.equal(row1, before[name][1]), f"{name}: whole-lung row did not train"


def test_a_film_card_round_trips_and_an_old_card_reads_as_heads(tmp_path: Path) -> None:
    child = _child(_parent(tmp_path))
    folder = save_model(tmp_path / "child", child, ModelCard(version="child", architecture=FILM, input_size=32, conventions=BOTH))
    assert json.loads((folder / "card.json").read_text())["architecture"]["conditioning"] == "film"
    loaded = load_model(folder)
    assert loaded.card.architecture.conditioning == "film" and loaded.card.conventions == BOTH
    old = tmp_path / "parent" / "card.json"
    card = json.loads(old.read_text())
    card["architecture"].pop("conditioning")
    old.write_text(json.dumps(card))
    assert load_model(tmp_path / "parent").card.architecture.conditioning == "head"


def test_a_film_parent_is_not_narrowed_to_heads_silently(tmp_path: Path) -> None:
    child = _child(_parent(tmp_path))
    folder = save_model(tmp_path / "child", child, ModelCard(version="child", architecture=FILM, input_size=32, conventions=BOTH))
    loaded = load_model(folder)
    heads = UNetConfig(base_channels=4, depth=2, out_channels=2, conditioning="head")
    with pytest.raises(ValueError, match="--conditioning film"):
        widened(loaded.model.state_dict(), loaded.card, heads, BOTH, str(folder))
