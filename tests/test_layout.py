"""The package is organised in folders by role (see "Layout" in README.md), and no file grows past
what one reader can hold: a few top-level modules (the npe2 contributions and settings), the rest
in subpackages that each say in their ``__init__.py`` what lives there."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "napari_lung_unet"
MAX_TOP_LEVEL_MODULES = 8
MAX_LINES = 400
CHECKED_FOLDERS = ("napari_lung_unet", "training", "tests", "bench", "scripts")


def _subpackages() -> list[Path]:
    return sorted(p.parent for p in PACKAGE.glob("*/__init__.py"))


def test_few_modules_at_the_top_level():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules


def test_subpackages_say_what_lives_in_them():
    subpackages = _subpackages()
    assert len(subpackages) >= 4, subpackages
    for folder in subpackages:
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc and doc.strip(), f"{folder.relative_to(ROOT)}/__init__.py has no docstring"


def _line_counts() -> dict[str, int]:
    return {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for folder in CHECKED_FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
    }


def test_the_line_counter_sees_every_folder():
    counted = _line_counts()
    for folder in CHECKED_FOLDERS:
        assert any(name.startswith(f"{folder}/") for name in counted), folder


def test_no_file_over_400_lines():
    too_long = {name: n for name, n in _line_counts().items() if n > MAX_LINES}
    assert not too_long, too_long
