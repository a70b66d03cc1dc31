"""The registry fails loudly and repairs easily: damaged pointers, invalid cards, races, kills,
a full disk (issue 12). Faults are real: files damaged on disk, SIGKILL from the atomic-write
layer's hook, a file-size limit from the kernel, a second process holding the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from napari_lung_unet.nn.card import CARD_NAME, ModelCard
from napari_lung_unet.cli import main
from napari_lung_unet.nn.model import UNet, UNetConfig
from napari_lung_unet.nn.model_io import ModelLoadError, ModelSaveError
from napari_lung_unet.nn.registry import PromotionConflict, Registry, RegistryError

TINY = UNetConfig(base_channels=4, depth=2)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}  # read at call time: it carries the test's LUNG_UNET_HOME


def _add(registry: Registry, version: str, **card: object) -> Path:
    torch.manual_seed(0)
    return registry.add(UNet(TINY), ModelCard(version=version, architecture=TINY, input_size=64, **card))


def _python(script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=_env(), timeout=timeout)


def _hidden(models: Path) -> list[str]:
    return sorted(str(p.relative_to(models)) for p in models.rglob(".*"))


# -- a damaged CURRENT --------------------------------------------------------------------------


def _damage(pointer: Path, kind: str) -> None:
    if kind == "dangling-symlink":
        pointer.unlink()
        pointer.symlink_to(pointer.parent / "nowhere")
        return
    pointer.write_bytes({"empty": b"", "truncated": b"v", "unknown": b"v9\n", "escape": b"../../etc\n",
                         "binary": b"\xff\xfe\x00\x01"}[kind])


@pytest.mark.parametrize("kind", ["empty", "truncated", "unknown", "escape", "binary", "dangling-symlink"])
def test_damaged_pointer_is_an_error_that_says_how_to_repair(isolated_home: Path, kind: str, tmp_path: Path,
                                                             phantom_png: Path, capsys: pytest.CaptureFixture) -> None:
    registry = Registry()
    _add(registry, "v1x")
    registry.set_current("v1x")
    pointer = isolated_home / "models" / "CURRENT"
    _damage(pointer, kind)

    with pytest.raises(RegistryError, match=r"models/CURRENT is damaged .*lung-unet models --rollback VERSION.*v1x"):
        Registry().current_version()
    # predict refuses instead of silently using the bundled model
    assert main(["predict", str(phantom_png), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CURRENT is damaged" in err and "--rollback" in err
    assert not (tmp_path / "out").exists()
    # and the command it names repairs any damage
    assert main(["models", "--rollback", "v1x"]) == 0
    assert "-> v1x" in capsys.readouterr().out
    assert Registry().current_version() == "v1x"


def test_no_pointer_at_all_means_the_bundled_model(isolated_home: Path) -> None:
    registry = Registry()
    _add(registry, "v1")
    assert registry.current_version() == registry.bundled_version


# -- invalid cards ------------------------------------------------------------------------------


def _set(card: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    for key in parents:
        card = card[key]
    card[last] = value


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("threshold", 1e308, "threshold: Input should be less than 1"),
        ("threshold", -1, "threshold: Input should be greater than 0"),
        ("created", 5, "created: Input should be a valid string"),
        ("normalisation.low", "a", "normalisation.low: Input should be a valid number"),
        ("normalisation.high", 0.1, "normalisation: low .* must be below high"),
        ("input_size", 384.5, "input_size: Input should be a valid integer"),
        ("architecture.base_channels", 1e40, "architecture.base_channels:"),
        ("architecture.depth", 40, "architecture.depth: Input should be less than or equal to 7"),
        ("version", "\x1b[2Jv1", "version: String should match pattern"),
    ],
)
def test_invalid_card_is_refused_with_file_and_field(isolated_home: Path, field: str, value: object, message: str) -> None:
    folder = _add(Registry(), "v1")
    card = json.loads((folder / CARD_NAME).read_text())
    _set(card, field, value)
    (folder / CARD_NAME).write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match=rf"cannot read model card .*v1/card.json: {message}"):
        Registry().load("v1")


def test_models_lists_every_readable_version_and_reports_each_unreadable(isolated_home: Path, capsys: pytest.CaptureFixture) -> None:
    registry = Registry()
    for version in ("good", "deep", "cut"):
        _add(registry, version)
    registry.set_current("cut")
    models = isolated_home / "models"
    card = json.loads((models / "deep" / CARD_NAME).read_text())
    deep = '{"a": ' * 5000 + "1" + "}" * 5000
    (models / "deep" / CARD_NAME).write_text(json.dumps({**card, "metrics": {}}).replace('"metrics": {}', f'"metrics": {deep}'))
    text = (models / "cut" / CARD_NAME).read_text()
    (models / "cut" / CARD_NAME).write_text(text[: len(text) // 2])

    assert main(["models"]) == 1
    out, err = capsys.readouterr()
    rows = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {registry.bundled_version, "good", "deep", "cut"}
    assert rows["cut"].startswith("*") and "UNREADABLE" in rows["cut"]  # the current one is still marked
    assert "UNREADABLE" in rows["deep"] and "UNREADABLE" not in rows["good"]
    assert "models/deep/card.json" in err and "models/cut/card.json" in err and len(err.splitlines()) == 2


# -- races and names ----------------------------------------------------------------------------


def test_version_names_are_unique_within_one_second(isolated_home: Path) -> None:
    registry = Registry()
    names = [registry.new_version_name() for _ in range(20)]
    assert len(set(names)) == 20
    for name in names[:2]:  # two fine-tunes finishing in the same second both keep their work
        _add(registry, name)
    assert set(names[:2]) <= set(registry.version_dirs())


def test_rollback_in_another_process_during_promotion_wins(isolated_home: Path) -> None:
    registry = Registry()
    _add(registry, "v1")
    _add(registry, "v2", parent="v1")
    registry.set_current("v1")
    # another process (the user's `models --rollback`) holds the lock while it rolls back
    started = isolated_home / "started"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import pathlib, time
        from napari_lung_unet.nn.registry import Registry
        r = Registry()
        with r.locked():
            pathlib.Path({str(started)!r}).touch()
            time.sleep(1.5)
            r.set_current(r.bundled_version)
        """)], env=_env())
    try:
        while not started.exists():
            assert holder.poll() is None, "lock holder died"
            time.sleep(0.05)
        with pytest.raises(PromotionConflict, match="current model changed from v1 to"):
            registry.promote("v2", expected_current="v1")  # waits for the lock, then sees the rollback
    finally:
        assert holder.wait(timeout=60) == 0
    assert Registry().current_version() == registry.bundled_version
    assert Registry().card("v2").status == "candidate"


@pytest.mark.parametrize("kill_at", [1, 2])
def test_kill_during_promotion_never_leaves_a_false_card_or_leftovers(isolated_home: Path, kill_at: int) -> None:
    registry = Registry()
    _add(registry, "v1")
    _add(registry, "v2", parent="v1")
    registry.set_current("v1")
    result = _python(f"""
        import os, signal
        from napari_lung_unet.store import atomic
        from napari_lung_unet.nn.registry import Registry
        calls = 0
        def kill(tmp, target):
            global calls
            calls += 1
            if calls == {kill_at}:  # 1: the pointer's rename, 2: the card's
                os.kill(os.getpid(), signal.SIGKILL)
        atomic.before_replace = kill
        Registry().promote("v2", "v1")
        """)
    assert result.returncode == -signal.SIGKILL, result.stderr
    models = isolated_home / "models"
    assert _hidden(models), "the kill should have left a temp file"
    fresh = Registry()  # the next start sweeps what the killed writer left
    assert _hidden(models) == []
    if fresh.current_version() == "v1":
        assert fresh.card("v2").status == "candidate"  # never "promoted" while not current
    else:
        assert fresh.current_version() == "v2"


def test_next_start_removes_a_killed_adds_staging_folder(isolated_home: Path) -> None:
    registry = Registry()
    _add(registry, "v1")
    result = _python("""
        import os, signal
        from napari_lung_unet.store import atomic
        from napari_lung_unet.nn.card import ModelCard
        from napari_lung_unet.nn.model import UNet, UNetConfig
        from napari_lung_unet.nn.registry import Registry
        atomic.before_replace = lambda tmp, target: os.kill(os.getpid(), signal.SIGKILL)
        cfg = UNetConfig(base_channels=4, depth=2)
        Registry().add(UNet(cfg), ModelCard(version="v2", architecture=cfg))
        """)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert any(name.startswith(".v2.") for name in _hidden(isolated_home / "models"))
    assert set(Registry().version_dirs()) == {registry.bundled_version, "v1"}
    assert _hidden(isolated_home / "models") == []


# -- a full disk --------------------------------------------------------------------------------


def test_full_disk_while_saving_is_one_clear_line(isolated_home: Path) -> None:
    registry = Registry()
    _add(registry, "v1")
    # the kernel refuses to grow any file past 2 kB: the weights write fails as on a full disk
    result = _python("""
        import resource, signal
        from napari_lung_unet.nn.card import ModelCard
        from napari_lung_unet.nn.model import UNet, UNetConfig
        from napari_lung_unet.nn.model_io import ModelSaveError
        from napari_lung_unet.nn.registry import Registry
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        cfg = UNetConfig(base_channels=4, depth=2)
        registry = Registry()
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, resource.RLIM_INFINITY))
        try:
            registry.add(UNet(cfg), ModelCard(version="v2", architecture=cfg))
        except OSError as exc:
            print(type(exc).__name__, "|", exc)
        """)
    assert result.returncode == 0, result.stderr
    kind, message = result.stdout.strip().split(" | ")
    assert kind == ModelSaveError.__name__ and issubclass(ModelSaveError, OSError)  # cli.py's handler prints it
    assert f"cannot write the weights of model v2 in {isolated_home / 'models'}: File too large" in message and "\n" not in message
    assert "SafetensorError" not in result.stdout + result.stderr
    assert set(Registry().version_dirs()) == {registry.bundled_version, "v1"}
    assert _hidden(isolated_home / "models") == []
