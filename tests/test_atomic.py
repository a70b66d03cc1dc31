"""Atomic writes: a failure mid-write never leaves a partial file, a temp file, or a damaged original."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_lung_unet.store.atomic import atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_png


def _half_then_fail(tmp: Path) -> None:
    tmp.write_bytes(b"half a file")
    raise OSError("disk full")


def test_failed_write_leaves_no_target_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out" / "mask.png"
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, _half_then_fail)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_interrupted_write_cleans_up_too(tmp_path: Path) -> None:
    def interrupted(tmp: Path) -> None:
        tmp.write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "a.bin", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_existing_target_survives_a_failed_rewrite(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    atomic_write_json(target, {"version": 1})
    with pytest.raises(OSError):
        atomic_write(target, _half_then_fail)
    assert json.loads(target.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_successful_write_replaces_and_uses_normal_permissions(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600


def test_png_round_trip(tmp_path: Path) -> None:
    labels = np.zeros((40, 50), np.uint8)
    labels[5:20, 5:20] = 1
    labels[5:20, 30:45] = 2
    rgb = np.dstack([labels * 100] * 3).astype(np.uint8)
    atomic_write_png(tmp_path / "labels.png", labels)
    atomic_write_png(tmp_path / "rgb.png", rgb)
    np.testing.assert_array_equal(iio.imread(tmp_path / "labels.png"), labels)
    np.testing.assert_array_equal(iio.imread(tmp_path / "rgb.png"), rgb)


def test_json_handles_numpy_and_paths(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "c.json", {"n": np.int64(3), "x": np.float32(0.5), "p": Path("/a/b")})
    assert json.loads((tmp_path / "c.json").read_text()) == {"n": 3, "x": 0.5, "p": "/a/b"}
