"""The figure of time-activity or time-dose-rate curves per segment (what absorbed dose integrates)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from DosimetryCore.io.outputs import atomic_path


def plot_time_curves(
    times_h: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    path_png: str | Path,
    ylabel: str = "mean dose rate (Gy/h)",
    legends: Mapping[str, str] | None = None,
) -> Path:
    """Draw each segment's values at ``times_h`` (h after administration, log scale) into a PNG; ``legends`` adds
    a note to a segment's legend entry (e.g. its fitted model). Returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    notes = legends or {}
    for name, values in curves.items():
        label = f"{name} ({notes[name]})" if name in notes else name
        axes.plot(list(times_h), list(values), marker="o", label=label)
    axes.set_xlabel("time after administration (h)")
    axes.set_ylabel(ylabel)
    axes.set_yscale("log")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    path_png = Path(path_png)
    path_png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path_png) as temporary:
        figure.savefig(temporary, format="png")
    return path_png
