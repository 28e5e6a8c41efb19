"""Sub-command ``absorbed-dose``: absorbed dose (Gy) from dose-rate or activity maps at several time points.

deepdosimetry absorbed-dose --timepoint TIME_H:IMAGE:CT [--timepoint ...] [--seg SEG.nrrd]
                            --output D.nrrd [--table T.csv] [--curves C.png] [--dvh H.png]
                            [--model mono|bi|trapezoid] [--half-life-h H] [--no-registration] [--deformable]
                            [--administered DATETIME] [--activity-method vdk|led|mc] [--unit Gy/h|Bq/mL]

IMAGE is a dose rate (Gy/h) or an activity (Bq/mL); TIME_H is the hours after administration, or ``dicom`` to
read it from the image's (else the CT's) DICOM acquisition time with ``--administered``.
"""

from __future__ import annotations

import argparse

from DosimetryCore import io
from DosimetryCore.core.provenance import read, stamp, stamp_command
from DosimetryCore.core.volume import array_from_image
from DosimetryCore.io.outputs import check_outputs

DICOM_TIME = "dicom"


def _timepoint(text: str) -> tuple[str, str, str]:
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"--timepoint: expected TIME_H:IMAGE_FILE:CT_FILE, got {text!r}")
    for part, what in ((parts[1], "image (dose rate or activity)"), (parts[2], "CT")):
        if not part.strip():
            raise ValueError(f"--timepoint {text!r}: the {what} file is missing; a CT is needed to register it")
    if parts[0] != DICOM_TIME:
        try:
            float(parts[0])
        except ValueError as error:
            raise ValueError(f"--timepoint: time {parts[0]!r} is not a number of hours nor {DICOM_TIME!r}") from error
    return parts[0], parts[1], parts[2]


def _time_points(timepoints, arguments: argparse.Namespace) -> tuple[list, list[str]]:
    """The :class:`TimePoint` of each ``--timepoint`` and a line per time point read from DICOM."""
    from DosimetryCore.core.acquisition_time import hours_from_images, parse_datetime
    from DosimetryCore.core.volume import set_unit, unit_of
    from DosimetryCore.dose.absorbed import TimePoint

    administered = parse_datetime(arguments.administered, "--administered") if arguments.administered else None
    points, notes = [], []
    for index, (time_text, image_path, ct_path) in enumerate(timepoints, start=1):
        image, ct = io.read_image(image_path), io.read_image(ct_path)
        if unit_of(image) is None and arguments.unit:
            image = set_unit(image, arguments.unit, "stated by --unit")
        if time_text == DICOM_TIME:
            if administered is None:
                raise ValueError(f"--timepoint {index}: time '{DICOM_TIME}' needs --administered (date and time)")
            hours, acquired = hours_from_images([image, ct], administered, f"--timepoint {index}")
            notes.append(f"  time point {index}: acquired {acquired.isoformat()} = {hours:.2f} h after administration")
        else:
            hours = float(time_text)
        points.append(TimePoint(hours, image, ct))
    return points, notes


def _run_absorbed_dose(arguments: argparse.Namespace) -> int:
    from DosimetryCore.core.progress import terminal_progress
    from DosimetryCore.dose.absorbed import absorbed_dose
    from DosimetryCore.evaluation.histograms import cumulative_histograms, plot_histograms
    from DosimetryCore.evaluation.time_curves import plot_time_curves
    from DosimetryCore.io.labels import label_names
    from DosimetryCore.io.tables import write_csv

    timepoints = [_timepoint(text) for text in arguments.timepoint]
    inputs = {f"--timepoint {i + 1} {kind}": path for i, (_, image, ct) in enumerate(timepoints)
              for kind, path in (("image", image), ("CT", ct))}  # fmt: skip
    outputs = {"--output": arguments.output, "--table": arguments.table, "--curves": arguments.curves,
               "--dvh": arguments.dvh}  # fmt: skip
    check_outputs({**inputs, "--seg": arguments.seg}, outputs)
    if (arguments.table or arguments.curves or arguments.dvh) and not arguments.seg:
        raise ValueError("--table, --curves, --dvh: need --seg (the segments they describe)")
    points, notes = _time_points(timepoints, arguments)
    labelmap = io.read_image(arguments.seg) if arguments.seg else None
    result = absorbed_dose(
        points,
        labelmap,
        label_names(labelmap) if labelmap is not None else None,
        model=arguments.model,
        effective_half_life_h=arguments.half_life_h,
        register=not arguments.no_registration,
        deformable=arguments.deformable,
        activity_method=arguments.activity_method,
        progress=terminal_progress(),
    )
    if arguments.administered:
        stamp(result.image, {**read(result.image), "administered": arguments.administered, "times_read": notes})
    stamp_command(result.image, "deepdosimetry absorbed-dose", {"seg": arguments.seg, **inputs})
    print(f"{io.write_image(result.image, arguments.output)}: absorbed dose (Gy)")
    for note in notes:
        print(note)
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
        legends = {row["segment"]: row["model"] for row in result.rows}
        path = plot_time_curves(result.times_h, result.curves, arguments.curves, legends=legends)
        print(f"{path}: time-dose-rate curves")
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
        "--timepoint", action="append", required=True, metavar="TIME_H:IMAGE:CT",
        help="hours after administration (or 'dicom': from the image's, else the CT's, DICOM acquisition time and "
        "--administered), dose-rate (Gy/h) or activity (Bq/mL) image and CT (HU) of one time point; repeat, in "
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
    command.add_argument(
        "--administered", metavar="DATETIME", help="administration date and time (local, e.g. 2026-11-30T10:15), "
        "for time points given as 'dicom'",
    )  # fmt: skip
    command.add_argument(
        "--activity-method", choices=("vdk", "led", "mc"), default="vdk",
        help="how an activity (Bq/mL) time point becomes a dose rate (default vdk)",
    )  # fmt: skip
    command.add_argument(
        "--unit", choices=("Gy/h", "Bq/mL"), help="unit of time-point images that state none (others keep theirs)"
    )
    command.set_defaults(handler=_run_absorbed_dose)
