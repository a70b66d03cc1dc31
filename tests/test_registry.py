"""Model folders and the versioned registry: safe loading, resolving, promotion, rollback, crash safety."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from napari_lung_unet.nn.card import CARD_NAME, WEIGHTS_NAME, ModelCard
from napari_lung_unet.nn.model import UNet, UNetConfig
from napari_lung_unet.nn.model_io import ModelLoadError, load_model, save_model
from napari_lung_unet.nn.registry import Registry, RegistryError

TINY = UNetConfig(base_channels=4, depth=2)


def _add(registry: Registry, version: str, seed: int = 0, **card: object) -> Path:
    torch.manual_seed(seed)
    return registry.add(UNet(TINY), ModelCard(version=version, architecture=TINY, input_size=64, **card))


class _Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


# -- loading ---------------------------------------------------------------------------------


def test_registry_round_trip_by_name(isolated_home: Path) -> None:
    registry = Registry()
    folder = _add(registry, "v1", metrics={"dice": 0.91}, parent="default-0")
    assert folder == isolated_home / "models" / "v1"
    loaded = registry.load("v1")
    assert loaded.card.version == "v1" and loaded.card.parent == "default-0" and loaded.card.metrics == {"dice": 0.91}
    torch.manual_seed(0)  # the same seed as _add: the same initial weights
    reference = UNet(TINY).eval()
    x = torch.rand(1, 1, 50, 70)
    with torch.inference_mode():
        assert torch.equal(loaded.model(x), reference(x))


def test_bundled_default_loads_with_a_card(isolated_home: Path) -> None:
    registry = Registry()
    assert registry.current_version() == registry.bundled_version
    loaded = registry.load()
    assert loaded.path == registry.bundled_dir
    assert loaded.card.input_size > 0 and 0 < loaded.card.threshold < 1


def test_resolve_by_name_folder_card_and_weights(tiny_model_dir: Path) -> None:
    registry = Registry()
    assert registry.resolve(None) == registry.bundled_dir
    assert registry.resolve(registry.bundled_version) == registry.bundled_dir
    for path in (tiny_model_dir, tiny_model_dir / CARD_NAME, tiny_model_dir / WEIGHTS_NAME, str(tiny_model_dir)):
        assert registry.resolve(path) == tiny_model_dir
    assert registry.load(tiny_model_dir / WEIGHTS_NAME).card.version == "tiny"
    with pytest.raises(RegistryError, match="neither a registered model version nor an existing path"):
        registry.resolve("no-such-model")


def test_folder_without_card_is_rejected(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tiny_model_dir / CARD_NAME).unlink()
    with pytest.raises(ModelLoadError, match=f"has no {CARD_NAME}"):
        load_model(tiny_model_dir)


def test_truncated_weights_give_model_load_error(tiny_model_dir: Path) -> None:
    weights = tiny_model_dir / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="truncated or not a safetensors file"):
        load_model(tiny_model_dir)


def test_pickle_weights_are_refused_without_running_code(tmp_path: Path, tiny_model_dir: Path) -> None:
    payload = pickle.dumps(_Payload(tmp_path / "pwned"))
    # the payload is live: unpickling it really runs code
    pickle.loads(pickle.dumps(_Payload(tmp_path / "proof")))
    assert (tmp_path / "proof").is_dir()

    weights = tiny_model_dir / WEIGHTS_NAME
    for blob in (payload, _torch_save_bytes(tmp_path, _Payload(tmp_path / "pwned"))):
        weights.write_bytes(blob)
        with pytest.raises(ModelLoadError):
            load_model(tiny_model_dir)
        assert not (tmp_path / "pwned").exists()


def _torch_save_bytes(tmp_path: Path, obj: object) -> bytes:
    """A ``torch.save`` checkpoint (zip + pickle), the format a careless loader would unpickle."""
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": obj}, path)
    return path.read_bytes()


def test_weights_that_do_not_match_the_card(tiny_model_dir: Path) -> None:
    card = ModelCard.read(tiny_model_dir / CARD_NAME)
    card.architecture = UNetConfig(base_channels=8, depth=2)
    (tiny_model_dir / CARD_NAME).write_text(json.dumps(card.to_dict()))
    with pytest.raises(ModelLoadError, match="do not match the card's architecture"):
        load_model(tiny_model_dir)


def test_damaged_card_does_not_hide_the_others(isolated_home: Path) -> None:
    registry = Registry()
    _add(registry, "good")
    _add(registry, "broken")
    (isolated_home / "models" / "broken" / CARD_NAME).write_text("{ not json")
    assert [c.version for c in registry.cards()] == [registry.bundled_version, "good"]
    with pytest.raises(ModelLoadError, match="cannot read model card"):
        registry.load("broken")


# -- writing -----------------------------------------------------------------------------------


def test_add_rejects_bad_and_duplicate_names() -> None:
    registry = Registry()
    _add(registry, "v1")
    with pytest.raises(RegistryError, match="already exists"):
        _add(registry, "v1")
    for bad in ("../escape", "", "a/b", ".hidden"):
        with pytest.raises(RegistryError, match="invalid version name"):
            _add(registry, bad)
    with pytest.raises(RegistryError, match="read-only"):
        registry.update_card(registry.card(registry.bundled_version))


def test_set_current_and_rollback(isolated_home: Path) -> None:
    registry = Registry()
    bundled = registry.bundled_version
    _add(registry, "v1", seed=1)
    _add(registry, "v2", seed=2, parent="v1")
    assert registry.current_version() == bundled  # adding never promotes by itself

    registry.set_current("v2")
    assert Registry().current_version() == "v2"  # persisted, seen by a fresh instance
    assert Registry().load().card.version == "v2"

    registry.set_current("v1")  # roll back one step
    assert Registry().load().card.version == "v1"
    registry.set_current(bundled)  # and all the way back
    assert Registry().load().path == registry.bundled_dir

    with pytest.raises(RegistryError, match="unknown model version 'v9'"):
        registry.set_current("v9")
    assert registry.current_version() == bundled


def test_set_current_refuses_broken_weights(isolated_home: Path) -> None:
    registry = Registry()
    _add(registry, "v1")
    folder = _add(registry, "v2")
    registry.set_current("v1")
    (folder / WEIGHTS_NAME).write_bytes(b"\0" * 40)
    with pytest.raises(RegistryError, match="cannot make 'v2' current"):
        registry.set_current("v2")
    assert registry.current_version() == "v1"


def test_current_pointing_at_a_removed_version_is_an_error(isolated_home: Path) -> None:
    # falling back to the bundled model would switch the user's model silently (issue 12)
    registry = Registry()
    _add(registry, "v1")
    registry.set_current("v1")
    (isolated_home / "models" / "v1" / CARD_NAME).unlink()
    with pytest.raises(RegistryError, match="CURRENT is damaged .*'v1'.*--rollback"):
        registry.load()


def test_interrupted_add_cleans_its_staging_folder(isolated_home: Path) -> None:
    class Interrupted(UNet):
        def state_dict(self, *args: object, **kwargs: object):  # type: ignore[override]
            raise KeyboardInterrupt  # Ctrl-C between creating the staging folder and writing into it

    registry = Registry()
    with pytest.raises(KeyboardInterrupt):
        registry.add(Interrupted(TINY), ModelCard(version="v1", architecture=TINY))
    assert [p.name for p in (isolated_home / "models").iterdir()] == []
    _add(registry, "v1")  # the name is still free
    assert registry.load("v1").card.version == "v1"


def test_process_killed_while_staging_leaves_registry_loadable(isolated_home: Path) -> None:
    # a real hard crash: the process dies halfway through writing the weights into the staging folder
    script = textwrap.dedent(
        """
        import os, safetensors.torch as st
        from napari_lung_unet.nn.card import ModelCard
        from napari_lung_unet.nn.model import UNet, UNetConfig
        from napari_lung_unet.nn.registry import Registry

        def die(tensors, filename, metadata=None):
            with open(filename, "wb") as fh:
                fh.write(b"partial")
            os._exit(9)

        import napari_lung_unet.nn.model_io as mio
        mio.save_file = die
        cfg = UNetConfig(base_channels=4, depth=2)
        Registry().add(UNet(cfg), ModelCard(version="v2", architecture=cfg))
        """
    )
    registry = Registry()
    _add(registry, "v1")
    registry.set_current("v1")
    result = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), capture_output=True, text=True)
    assert result.returncode == 9, result.stderr
    leftovers = [p.name for p in (isolated_home / "models").iterdir() if p.name.startswith(".v2.")]
    assert leftovers, "the crash should have left a staging folder behind"

    fresh = Registry()
    assert set(fresh.version_dirs()) == {fresh.bundled_version, "v1"}
    assert fresh.current_version() == "v1"
    assert fresh.load().card.version == "v1"
    _add(fresh, "v2")  # and the interrupted version can be added again
    assert fresh.load("v2").card.version == "v2"
