"""DDP under torchrun: 2 gloo processes on the CPU learn (their loss falls) and end with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file


def test_two_rank_ddp_training_ends_with_identical_weights(phantom_dataset: Path, tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(
        "import json, os, sys\n"
        "from safetensors.torch import save_file\n"
        "from training.trainer import Trainer, TrainConfig\n"
        f"cfg = TrainConfig(data=[{str(phantom_dataset)!r}], output={str(tmp_path / 'run')!r}, base_channels=4, depth=2,\n"
        "    input_size=64, epochs=6, batch_size=2, val_fraction=0.34, show_progress=False, workers=0, device='cpu',\n"
        "    augment=False)\n"
        "losses = []  # this rank's own training loss, step by step\n"
        "trainer = Trainer(cfg, progress=lambda event: losses.append((event['epoch'], event['loss'])))\n"
        "trainer.run()\n"
        "import torch.distributed as dist\n"
        "from napari_lung_unet.nn.model_io import load_model\n"
        "# each rank dumps the weights it holds in memory, not the checkpoint rank 0 wrote\n"
        f"save_file(trainer.final_state, os.path.join({str(tmp_path)!r}, f'rank{{dist.get_rank()}}.safetensors'))\n"
        f"open(os.path.join({str(tmp_path)!r}, f'rank{{dist.get_rank()}}.json'), 'w').write(json.dumps(losses))\n"
        "dist.destroy_process_group()\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0, w1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert w0.keys() == w1.keys() and len(w0) > 0
    for key in w0:
        assert (w0[key] == w1[key]).all(), key
    # and both really trained: each rank's loss on its own shard fell from the first epoch to the last
    for rank in (0, 1):
        losses = json.loads((tmp_path / f"rank{rank}.json").read_text())
        first = [loss for epoch, loss in losses if epoch == 1]
        last = [loss for epoch, loss in losses if epoch == 6]
        assert first and last, losses
        assert sum(last) / len(last) < 0.97 * sum(first) / len(first), (rank, losses)  # ~7 % in 6 epochs, fell every one
