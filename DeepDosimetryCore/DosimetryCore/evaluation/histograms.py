"""Cumulative dose(-rate)-volume histograms per segment, and their figure.

For a segment S and a dose value d, the cumulative histogram gives the share of S's volume (%) that receives at
least d: V(d) = 100 x |{v in S : D(v) >= d}| / |S|. The dose axis is shared by all segments (``bins`` steps from 0
to the largest value in any segment), so curves can be compared on one chart.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

DEFAULT_BINS = 200


def cumulative_histograms(
    values: np.ndarray, labels: np.ndarray, names: Mapping[int, str], bins: int = DEFAULT_BINS
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(dose axis (bins + 1,), {segment name: volume % receiving at least each dose}) for every named label
    present in ``labels`` (same shape as ``values``)."""
    if values.shape != labels.shape:
        raise ValueError(f"values and labels: shapes {values.shape} and {labels.shape} differ")
    if bins < 1:
        raise ValueError(f"bins: expected >= 1, got {bins}")
    present = {int(label): name for label, name in names.items() if np.any(labels == label)}
    if not present:
        raise ValueError("labels: none of the named segments is present")
    inside = np.isin(labels, list(present))
    top = float(values[inside].max())
    axis = np.linspace(0.0, top if top > 0 else 1.0, bins + 1)
    curves = {}
    for label, name in present.items():
        segment = np.sort(values[labels == label].astype(np.float64))
        at_least = segment.size - np.searchsorted(segment, axis, side="left")
        curves[name] = 100.0 * at_least / segment.size
    return axis, curves


def plot_histograms(
    axis: np.ndarray, curves: Mapping[str, np.ndarray], path_png: str | Path, unit: str, title: str
) -> Path:
    """Draw the cumulative histograms into a PNG; returns its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, volume in curves.items():
        axes.plot(axis, volume, label=name)
    axes.set_xlabel(f"dose rate ({unit})" if "/h" in unit else f"dose ({unit})")
    axes.set_ylabel("volume receiving at least (%)")
    axes.set_ylim(0, 101)
    axes.set_xlim(0, float(axis[-1]))
    axes.grid(True, alpha=0.3)
    axes.set_title(title)
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    path_png = Path(path_png)
    path_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path_png, format="png")
    return path_png
