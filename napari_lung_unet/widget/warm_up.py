"""napari's one-time costs of a first layer, paid on a background thread as the dock opens.

The first X-ray a dock shows is the first layer of many sessions, and napari pays three one-time
costs on the GUI thread when it adds it: it builds pint's unit registry (it parses pint's unit
definitions: about 0.5 s), imports pandas for the labels' feature table, and fills vispy's
dash-pattern cache. On a 20-Mpx X-ray that froze the window for about a second while the first
folder opened (docs/benchmarks.md, issue 33). None of it needs the GUI thread.

The registry is built on the thread but installed on the GUI thread, and only while the
application's registry is still the lazy, unbuilt one: napari reads it on the GUI thread only, so
nothing can hold a unit of the registry it replaces.
"""

from __future__ import annotations

import logging
import threading

from qtpy.QtWidgets import QApplication

from .delivery import on_gui_thread, prepare

log = logging.getLogger(__name__)

_started = False
_done = threading.Event()


def _build_registry() -> object:
    import pint

    registry = pint.UnitRegistry(on_redefinition="raise")  # what pint's lazy registry builds
    registry.pixel  # noqa: B018 - the first unit lookup finishes the registry's set-up
    return registry


def _install(registry: object) -> None:
    import pint

    if isinstance(pint.get_application_registry().get(), pint.LazyRegistry):
        pint.set_application_registry(registry)


def _warm() -> None:
    try:
        import pandas  # noqa: F401 - napari's labels import it on their first feature table
        from vispy.visuals.line.dash_atlas import DashAtlas

        DashAtlas()  # its patterns are cached per process (functools.lru_cache)
        registry = _build_registry()
    except Exception:  # noqa: BLE001 - a warm-up that fails only leaves napari to pay the cost itself
        log.exception("warming napari's first layer up failed; the first case will open more slowly")
        _done.set()
        return

    def install() -> None:
        _install(registry)
        _done.set()

    # posted to the application, not to the dock that started it: the dock may be closed by then
    on_gui_thread(QApplication.instance(), install)


def warm_up() -> None:
    """Start the warm-up once per process (call on the GUI thread, with a QApplication)."""
    global _started
    if _started:
        return
    _started = True
    prepare()
    threading.Thread(target=_warm, name="lung-unet-warm-up", daemon=True).start()


def warmed_up() -> bool:
    """Whether the warm-up has finished (benches wait for it, as a user's first folder comes seconds later)."""
    return _done.is_set()
