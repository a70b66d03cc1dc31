"""The npe2 manifest: valid, importable, shipped inside the package, and what the widget tests expect."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest
from npe2 import PluginManifest

ROOT = Path(__file__).resolve().parents[1]
DIST = "napari-lung-unet"


@pytest.fixture(scope="module")
def manifest() -> PluginManifest:
    return PluginManifest.from_distribution(DIST)  # via the installed entry point, as napari finds it


def test_top_level_manifest_file_is_valid():
    pm = PluginManifest.from_file(ROOT / "napari.yaml")
    assert pm.name == DIST


def test_installed_package_contains_the_same_manifest():
    shipped = resources.files("napari_lung_unet").joinpath("napari.yaml")
    assert shipped.is_file()
    assert shipped.read_text(encoding="utf-8") == (ROOT / "napari.yaml").read_text(encoding="utf-8")


def test_every_python_name_imports(manifest: PluginManifest):
    manifest.validate_imports()  # raises listing any command whose python_name does not resolve


def test_npe2_validate_cli_passes():
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", DIST, "--imports"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_contributions(manifest: PluginManifest):
    contrib = manifest.contributions
    assert [w.display_name for w in contrib.widgets] == ["Lung U-Net"]
    assert [(s.key, s.display_name) for s in contrib.sample_data] == [("chest_phantom", "Chest X-ray phantom")]
    files, folders = contrib.readers
    assert files.command == "napari-lung-unet.get_reader"
    assert set(files.filename_patterns) == {"*.dcm", "*.dicom"}  # no "*": PNGs must stay unambiguous
    assert not files.accepts_directories
    # a folder opens as a review worklist; no file patterns, so it never competes for a file
    assert folders.command == "napari-lung-unet.get_folder_reader"
    assert folders.filename_patterns == [] and folders.accepts_directories
    [writer] = contrib.writers
    assert writer.layer_types == ["labels"]
    assert set(writer.filename_extensions) == {".png", ".tif", ".tiff"}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("hatchling") is None, reason="needs hatchling to build offline")
def test_built_wheel_carries_the_manifest_as_a_real_file(tmp_path: Path):
    """napari.yaml is a symlink in the package folder; a wheel must hold its content, not a link."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    [wheel] = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read("napari_lung_unet/napari.yaml").decode("utf-8")
    assert text == (ROOT / "napari.yaml").read_text(encoding="utf-8")
