"""Draw training curves (loss and the seed's four metrics per epoch) from the CSV log."""

from __future__ import annotations

from pathlib import Path

from napari_lung_unet.store.atomic import atomic_write

from .metrics import METRIC_NAMES
from .runlog import read_log


def plot_curves(log_csv: str | Path, out_png: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(Path(log_csv))
    if not rows:
        raise ValueError(f"{log_csv}: no epochs logged")
    epochs = [int(r["epoch"]) for r in rows]
    fig, axes = plt.subplots(1, 1 + len(METRIC_NAMES), figsize=(4 * (1 + len(METRIC_NAMES)), 3.2))
    for ax, name in zip(axes, ("loss", *METRIC_NAMES)):
        ax.plot(epochs, [float(r[name]) for r in rows], label="train")
        ax.plot(epochs, [float(r[f"val_{name}"]) for r in rows], label="validation")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    atomic_write(out_png, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return Path(out_png)
