"""napari reader contribution for folders: a folder of chest X-rays opens as a review worklist.

``viewer.open(folder, plugin="napari-lung-unet")``, File ▸ Open Folder… and dropping a folder on
the canvas all end here, and do what the dock's "Open folder…" does: the Lung U-Net dock is
added (or found) and the folder's first unreviewed case opens with its proposal. The layers are
made by the dock (it reuses one image/mask pair for every case), so the reader returns napari's
"nothing to add" sentinel ``[(None,)]`` instead of layer data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .images.read import list_images

PLUGIN, WIDGET = "napari-lung-unet", "Lung U-Net"  # the manifest's plugin name and widget display name
PathOrPaths = str | Path | Sequence[str | Path]


def get_folder_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[tuple[Any, ...]]] | None:
    """:func:`open_worklist` for one folder that holds X-ray images; None for anything else."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if len(paths) != 1 or not Path(paths[0]).is_dir() or not list_images([paths[0]]):
        return None
    return open_worklist


def open_worklist(path: PathOrPaths) -> list[tuple[Any, ...]]:
    """Open the folder in the Lung U-Net dock of the current viewer (problems are shown by the dock)."""
    import napari

    folder = path if isinstance(path, (str, Path)) else path[0]
    viewer = napari.current_viewer()
    if viewer is None:
        raise RuntimeError("a folder opens as a worklist only in a napari viewer")
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    widget.review.open_folder(folder)
    return [(None,)]
