"""Sub-command ``absorbed-dose``: absorbed dose (Gy) from dose-rate maps at several time points.

deepdosimetry absorbed-dose --timepoint TIME_H:DOSE_RATE.nrrd:CT.nrrd [--timepoint ...] [--seg SEG.nrrd]
                            --output D.nrrd [--table T.csv] [--curves C.png] [--dvh H.png]
                            [--model mono|bi|trapezoid] [--half-life-h H] [--no-registration] [--deformable]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from DosimetryCore import io
from DosimetryCore.core.provenance import stamp_command
from DosimetryCore.core.volume import array_from_image
from DosimetryCore.io.outputs import check_outputs


def _timepoint(text: str) -> tuple[float, str, str]:
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"--timepoint: expected TIME_H:DOSE_RATE_FILE:CT_FILE, got {text!r}")
    try:
        return float(parts[0]), parts[1], parts[2]
    except ValueError as error:
        raise ValueError(f"--timepoint: time {parts[0]!r} is not a number of hours") from error


def _plot_curves(curves: dict, times: list[float], rows: list[dict], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for row in rows:
        axes.plot(times, curves[row["segment"]], marker="o", label=f"{row['segment']} ({row['model']})")
    axes.set_xlabel("time after administration (h)")
    axes.set_ylabel("mean dose rate (Gy/h)")
    axes.set_yscale("log")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _run_absorbed_dose(arguments: argparse.Namespace) -> int:
    from DosimetryCore.core.progress import terminal_progress
    from DosimetryCore.dose.absorbed import TimePoint, absorbed_dose
    from DosimetryCore.evaluation.histograms import cumulative_histograms, plot_histograms
    from DosimetryCore.io.labels import label_names
    from DosimetryCore.io.tables import write_csv

    timepoints = [_timepoint(text) for text in arguments.timepoint]
    inputs = {f"--timepoint {i + 1} {kind}": path for i, (_, rate, ct) in enumerate(timepoints)
              for kind, path in (("dose rate", rate), ("CT", ct))}  # fmt: skip
    outputs = {"--output": arguments.output, "--table": arguments.table, "--curves": arguments.curves,
               "--dvh": arguments.dvh}  # fmt: skip
    check_outputs({**inputs, "--seg": arguments.seg}, outputs)
    if (arguments.table or arguments.curves or arguments.dvh) and not arguments.seg:
        raise ValueError("--table, --curves, --dvh: need --seg (the segments they describe)")
    points = [TimePoint(time_h, io.read_image(rate), io.read_image(ct)) for time_h, rate, ct in timepoints]
    labelmap = io.read_image(arguments.seg) if arguments.seg else None
    result = absorbed_dose(
        points,
        labelmap,
        label_names(labelmap) if labelmap is not None else None,
        model=arguments.model,
        effective_half_life_h=arguments.half_life_h,
        register=not arguments.no_registration,
        deformable=arguments.deformable,
        progress=terminal_progress(),
    )
    stamp_command(result.image, "deepdosimetry absorbed-dose", {"seg": arguments.seg, **inputs})
    print(f"{io.write_image(result.image, arguments.output)}: absorbed dose (Gy)")
    for record in result.registrations[1:]:
        if "translation_mm" in record:
            shift = ", ".join(f"{v:.1f}" for v in record["translation_mm"])
            print(f"  {record['time_h']:g} h registered: shift ({shift}) mm, CT correlation "
                  f"{record['ct_correlation_before']:.2f} -> {record['ct_correlation_after']:.2f}")  # fmt: skip
    for row in result.rows:
        print(f"  {row['segment']}: {row['mean_Gy']:.4g} Gy +- {row['uncertainty_Gy']:.2g} ({row['model']}, "
              f"T_eff {row['effective_half_life_h']:.3g} h)")  # fmt: skip
    if arguments.table:
        print(f"{write_csv(result.rows, arguments.table)}: per-segment table")
    if arguments.curves:
        print(
            f"{_plot_curves(result.curves, result.times_h, result.rows, Path(arguments.curves))}: time-dose-rate curves"
        )
    if arguments.dvh:
        axis, curves = cumulative_histograms(
            array_from_image(result.image), array_from_image(labelmap), label_names(labelmap)
        )
        print(f"{plot_histograms(axis, curves, arguments.dvh, 'Gy', 'dose-volume histograms')}: dose-volume histograms")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``absorbed-dose`` to the ``deepdosimetry`` command."""
    command = subparsers.add_parser(
        "absorbed-dose", help="absorbed dose (Gy) from dose-rate maps at several time points, with their CTs"
    )
    command.add_argument(
        "--timepoint", action="append", required=True, metavar="TIME_H:DOSE_RATE:CT",
        help="hours after administration, dose-rate image (Gy/h) and CT (HU) of one time point; repeat, in "
        "increasing time; the first is the reference grid",
    )  # fmt: skip
    command.add_argument("--seg", help="labelmap of the segments on the first time point's grid")
    command.add_argument("--output", required=True, help="absorbed-dose image (Gy)")
    command.add_argument("--table", help="per-segment table (CSV): dose, uncertainty, model, half-life, D2/D50/D98")
    command.add_argument("--curves", help="time-dose-rate curves per segment (PNG)")
    command.add_argument("--dvh", help="dose-volume histograms per segment (PNG)")
    command.add_argument(
        "--model", choices=("mono", "bi", "trapezoid"), help="time-activity model of every segment (default: AICc)"
    )
    command.add_argument("--half-life-h", type=float, help="effective half-life (h), needed with one time point")
    command.add_argument("--no-registration", action="store_true", help="take the time points as aligned")
    command.add_argument("--deformable", action="store_true", help="refine the rigid registration by a B-spline")
    command.set_defaults(handler=_run_absorbed_dose)
