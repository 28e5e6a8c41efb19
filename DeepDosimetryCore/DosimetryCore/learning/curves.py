"""Training curves: loss per epoch, and any further per-epoch numbers (e.g. SSIM) in a second panel."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

HISTORY_KEYS = ("epoch", "train_loss", "val_loss", "lr", "wall_time_s", "world_size")
"""The keys :func:`DosimetryCore.learning.training.train` writes into every history entry; any other key is a
per-epoch metric (its ``epoch_metrics``)."""


def plot_loss_curve(history: Sequence[dict[str, float]], path_png: str | Path) -> Path:
    """Draw training and validation loss per epoch (log scale when positive) into a PNG; returns its path.

    ``history`` is :attr:`~DosimetryCore.learning.training.TrainingResult.history`; the best validation epoch is
    marked. Entries with further numbers than :data:`HISTORY_KEYS` (e.g. ``train_ssim`` and ``val_ssim``) get a
    second panel with one line each.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not history:
        raise ValueError("history: is empty, nothing to plot")
    epochs = [entry["epoch"] for entry in history]
    train_loss = [entry["train_loss"] for entry in history]
    val_loss = [entry["val_loss"] for entry in history]
    best = int(np.nanargmin(val_loss))
    extra = list(dict.fromkeys(key for entry in history for key in entry if key not in HISTORY_KEYS))
    figure = Figure(figsize=(6, 7 if extra else 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(2 if extra else 1, 1, 1)
    axes.plot(epochs, train_loss, marker=".", label="training")
    axes.plot(epochs, val_loss, marker=".", label="validation")
    axes.plot([epochs[best]], [val_loss[best]], "k*", markersize=12, label=f"best (epoch {epochs[best]})")
    if min(train_loss + val_loss) > 0:
        axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.grid(True, alpha=0.3)
    axes.legend()
    if extra:
        metrics = figure.add_subplot(2, 1, 2)
        for key in extra:
            metrics.plot(epochs, [entry.get(key, np.nan) for entry in history], marker=".", label=key)
        metrics.set_xlabel("epoch")
        metrics.grid(True, alpha=0.3)
        metrics.legend()
    figure.tight_layout()
    path_png = Path(path_png)
    path_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path_png, format="png")
    return path_png
