"""Hostile worklist.json files and unknown values: does the folder open, and does a bad value reach a record?

Prints one line per probe. Run it with this checkout, then with another one first on PYTHONPATH
to get the "before" column of docs/reliability.md (round 3)::

    python bench/worklist_probes.py
    PYTHONPATH=/path/to/old/checkout python bench/worklist_probes.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from napari_lung_unet.store.corrections import CorrectionRecord, CorrectionsStore
from napari_lung_unet.store.worklist import Worklist

FILES = {
    "top-level []": "[]",
    "cases: []": '{"cases": []}',
    "deep nesting (200,000 [)": '{"cases": ' + "[" * 200_000 + "]" * 200_000 + "}",
    "case entry is text": '{"cases": {"x0": "accepted"}}',
    "status 5": '{"cases": {"x0": {"file": "x0.png", "status": 5}}}',
    "status 'sideways'": '{"cases": {"x0": {"file": "x0.png", "status": "sideways"}}}',
    "confidence 'high'": '{"cases": {"x0": {"file": "x0.png", "status": "proposed", "confidence": "high"}}}',
    "case convention 'sideways'": '{"cases": {"x0": {"file": "x0.png", "status": "proposed", "extra": {"convention": "sideways"}}}}',
    "settings.convention 'sideways'": '{"settings": {"convention": "sideways"}}',
    "settings: []": '{"settings": []}',
}


def folder_with(tmp: Path, name: str, text: str) -> Path:
    folder = tmp / name.replace(" ", "_").replace("'", "").replace("[", "").replace("]", "").replace(".", "_").replace(":", "")
    (folder / ".lung_unet").mkdir(parents=True)
    iio.imwrite(folder / "x0.png", np.random.default_rng(0).integers(0, 255, (40, 36), dtype=np.uint8))
    (folder / ".lung_unet" / "worklist.json").write_text(text)
    return folder


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="worklist_probes_"))
    for name, text in FILES.items():
        folder = folder_with(tmp, name, text)
        try:
            wl = Worklist(folder)
        except BaseException as exc:  # noqa: BLE001 - the probe reports whatever escapes
            print(f"{name}: folder does not open: {type(exc).__name__}: {str(exc)[:80]}")
            continue
        case = wl.cases[0]
        said = (wl.load_error or "no message")[-110:]
        print(f"{name}: opens; status={case.status!r} confidence={case.confidence!r} convention={case.convention!r} "
              f"settings={dict(wl.settings)!r}; {said}")
    # values set through the API
    folder = folder_with(tmp, "api", "{}")
    wl = Worklist(folder)
    for label, action in [
        ("set_status 'sideways'", lambda: wl.set_status(wl.cases[0], "sideways")),
        ("record_proposal convention 'sideways'", lambda: wl.record_proposal(wl.cases[0], "v1", 0.9, "sideways")),
        ("settings['convention'] = 'sideways'", lambda: wl.settings.__setitem__("convention", "sideways")),
    ]:
        try:
            action()
            print(f"{label}: taken (convention={wl.cases[0].convention!r}, settings={dict(wl.settings)!r})")
        except ValueError as exc:
            print(f"{label}: refused: {exc}")
    store = CorrectionsStore(tmp / "store")
    try:
        store.add(wl.cases[0].path, np.ones((40, 36), np.uint8),
                  CorrectionRecord("x0", str(wl.cases[0].path), "", "v1", 0.0, convention="sideways"))  # type: ignore[arg-type]
        print(f"store.add convention 'sideways': stored; record convention {store.record('x0').convention!r}" if len(store) else "?")
    except Exception as exc:  # noqa: BLE001
        print(f"store.add convention 'sideways': refused: {str(exc)[:100]}")


if __name__ == "__main__":
    main()
