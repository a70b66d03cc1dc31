"""napari's built-in reader also claims *.dcm: what happens, and the documented one-time setting that settles it.

napari has no contribution priority between readers (npe2 manifests carry none); it asks the user
unless ``settings.plugins.extension2reader`` names one. The README documents setting it once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_files import write_radiograph

PLUGIN = "napari-lung-unet"


@pytest.fixture
def dicom(tmp_path: Path) -> Path:
    return write_radiograph(tmp_path / "chest.dcm", (np.random.default_rng(0).random((64, 48)) * 255).astype(np.uint8))


@pytest.fixture
def reader_settings():
    from napari.settings import get_settings

    plugins = get_settings().plugins
    before = dict(plugins.extension2reader)
    plugins.extension2reader = {k: v for k, v in before.items() if k not in ("*.dcm", "*.dicom")}
    yield plugins
    plugins.extension2reader = before


@pytest.mark.gui
def test_dcm_is_claimed_by_two_readers_until_the_setting_names_ours(dicom: Path, reader_settings, make_napari_viewer) -> None:
    from napari.errors import MultipleReaderError

    viewer = make_napari_viewer()
    with pytest.raises(MultipleReaderError):
        # plugin=None is what File > Open and drag-and-drop do; the GUI turns this error into its question
        viewer.open(str(dicom), plugin=None)

    # the README's one-time setting (the same one napari's "remember this choice" box saves)
    reader_settings.extension2reader = {**reader_settings.extension2reader, "*.dcm": PLUGIN, "*.dicom": PLUGIN}
    [layer] = viewer.open(str(dicom), plugin=None)
    assert layer.name == "chest" and layer.metadata["spacing_mm"] == (0.25, 0.25)
