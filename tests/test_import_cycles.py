"""No module of ``napari_lung_unet`` or ``training`` imports another in a loop (static: read from the source, nothing imported).

Every import counts: at module level, under ``if TYPE_CHECKING:`` (a type-only import still ties
the two modules together) and inside functions (a lazy import delays the load, not the
dependency: the old ``io.py`` <-> ``dicom_read.py`` circle hid behind one). A loop such as the old
``widget/dock.py`` <-> ``widget/review.py`` means neither module can be understood, tested or
reused without the other; the dock state exists so that panels need not reach into each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (ROOT / "napari_lung_unet", ROOT / "training")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (``from . import x`` counts as x, not the package)."""
    paths = {module_name(p): p for package in PACKAGES for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in paths]
                targets = submodules or [base]
            graph[name] |= {t for t in targets if t in paths and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_checker_finds_a_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_deferred_imports():
    graph = import_graph()
    # images/read.py imports the DICOM decoder inside a function; cli/__init__.py its dispatcher
    assert "napari_lung_unet.dicom.read" in graph["napari_lung_unet.images.read"]
    assert "napari_lung_unet.cli.dispatch" in graph["napari_lung_unet.cli"]
    assert "training.trainer" in graph["napari_lung_unet.cli.train"]


def test_no_import_cycles_in_the_packages():
    graph = import_graph()
    assert "napari_lung_unet.widget.review" in graph and "training.finetune" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_widget_modules_do_not_import_the_dock():
    graph = import_graph()
    importers = sorted(m for m, deps in graph.items() if "napari_lung_unet.widget.dock" in deps)
    assert importers == ["napari_lung_unet.widget"]
