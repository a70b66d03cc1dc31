"""The README's runnable command blocks run (issue 31 #7): each ```bash block that follows a
``<!-- runnable -->`` line is run with bash, in order, in one empty folder, as a reader would type them.

Real commands in real processes: the ``lung-unet`` and ``python`` of this environment, the shipped model,
no data beyond what the blocks make themselves.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- runnable -->"
BLOCK = re.compile(re.escape(MARK) + r"\s*\n```bash\n(.*?)\n```", re.S)


def runnable_blocks(text: str) -> list[str]:
    """The ```bash blocks right after a runnable mark, in order."""
    return BLOCK.findall(text)


BLOCKS = runnable_blocks((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_marks_help_a_phantom_predict_and_evaluate_runnable() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(MARK) - text.count(f"`{MARK}`") == len(BLOCKS), "a mark not followed by a ```bash block"
    joined = "\n".join(BLOCKS)
    for command in ("lung-unet --help", "lung-unet predict ", "lung-unet evaluate "):
        assert command in joined, command


@pytest.fixture(scope="module")
def reader_folder(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One empty folder the blocks run in, and how many of them have run there."""
    return {"cwd": tmp_path_factory.mktemp("readme"), "done": 0}


def _environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # this environment's lung-unet and python
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["LUNG_UNET_HOME"] = str(home)  # a new user's: the shipped model only
    return env


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_a_runnable_readme_block_runs(index: int, reader_folder: dict, tmp_path: Path) -> None:
    cwd = reader_folder["cwd"]
    while reader_folder["done"] <= index:  # the earlier blocks first, as a reader runs them (also under -k)
        block = BLOCKS[reader_folder["done"]]
        result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=cwd, capture_output=True, text=True,
                                env=_environment(cwd / ".home"), timeout=300)
        assert result.returncode == 0, f"README block failed:\n{block}\n--- stderr:\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr, result.stderr
        reader_folder["done"] += 1
