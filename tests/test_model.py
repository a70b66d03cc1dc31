"""The U-Net itself: any input size, the seed's parameter count, lossless safetensors round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from napari_lung_unet.nn.card import ModelCard
from napari_lung_unet.nn.model import UNet, UNetConfig, count_parameters
from napari_lung_unet.nn.model_io import load_model, save_model

TINY = UNetConfig(base_channels=4, depth=2)


@pytest.mark.parametrize("shape", [(257, 391), (64, 64), (33, 47), (5, 7)])
def test_forward_keeps_odd_shapes(shape: tuple[int, int]) -> None:
    model = UNet(UNetConfig(base_channels=4, depth=4)).eval()
    with torch.inference_mode():
        out = model(torch.rand(2, 1, *shape))
    assert out.shape == (2, 1, *shape)
    assert torch.isfinite(out).all()


def test_default_config_forward_on_odd_size() -> None:
    model = UNet(UNetConfig()).eval()
    with torch.inference_mode():
        assert model(torch.rand(1, 1, 257, 391)).shape == (1, 1, 257, 391)


def test_seed_config_has_31m_parameters() -> None:
    cfg = UNetConfig.seed()
    assert (cfg.base_channels, cfg.depth, cfg.norm, cfg.upsample) == (64, 4, "batch", "transpose")
    assert count_parameters(UNet(cfg)) == pytest.approx(31.0e6, abs=0.1e6)


@pytest.mark.parametrize(
    "cfg",
    [
        UNetConfig(base_channels=4, depth=3, upsample="bilinear"),
        UNetConfig(base_channels=4, depth=3, norm="instance"),
        UNetConfig(base_channels=4, depth=3, norm="group"),
        UNetConfig(base_channels=4, depth=3, norm="none", upsample="bilinear"),
    ],
    ids=["bilinear", "instance", "group", "none"],
)
def test_variants_run(cfg: UNetConfig) -> None:
    model = UNet(cfg).eval()
    prob = model.predict_proba(torch.rand(1, 1, 45, 61))
    assert prob.shape == (1, 1, 45, 61)
    assert 0.0 <= float(prob.min()) and float(prob.max()) <= 1.0


def test_wrong_channel_count_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"expects 1 input channel.*got 3.*RGB"):
        UNet(TINY)(torch.rand(1, 3, 64, 64))


@pytest.mark.parametrize("shape", [(64, 64), (1, 64, 64), (1, 1, 1, 64, 64)])
def test_non_4d_input_is_a_clear_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=rf"4-D tensor \(N, C, H, W\); got {len(shape)}-D"):
        UNet(TINY)(torch.rand(*shape))


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown norm"):
        UNetConfig(norm="layer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid U-Net config"):
        UNetConfig(depth=0)


def test_safetensors_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(1)
    cfg = UNetConfig(base_channels=4, depth=3, norm="group", upsample="bilinear")
    model = UNet(cfg).eval()
    card = ModelCard(version="rt-1", architecture=cfg, input_size=96, threshold=0.4, metrics={"dice": 0.9}, parent="x")
    save_model(tmp_path / "m", model, card)
    loaded = load_model(tmp_path / "m")

    assert loaded.card.to_dict() == card.to_dict()
    assert not loaded.model.training
    x = torch.rand(2, 1, 77, 101)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded.model(x))


def test_round_trip_keeps_batchnorm_statistics(tmp_path: Path) -> None:
    # running mean/var are buffers, not parameters: losing them would only show at inference
    torch.manual_seed(2)
    model = UNet(TINY).train()
    for _ in range(3):
        model(torch.rand(4, 1, 32, 32) * 5 + 2)
    model.eval()
    save_model(tmp_path / "bn", model, ModelCard(version="bn", architecture=TINY))
    loaded = load_model(tmp_path / "bn").model
    for name, buf in model.named_buffers():
        assert torch.equal(buf, dict(loaded.named_buffers())[name]), name
