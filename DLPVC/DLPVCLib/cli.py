"""Sub-command ``pvc`` of the ``deepdosimetry`` command (registered through the ``deepdosimetry.commands`` entry point).

    deepdosimetry pvc --input SPECT.nrrd --method dl|iy [--seg SEG.nrrd] [--fwhm-mm X Y Z]
                      [--iterations N] [--model NAME] [--device DEVICE] --output OUT.nrrd [--table T.csv]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from DLPVCLib.correction import (
    DEFAULT_FWHM_MM,
    DEFAULT_MODEL,
    correct_dl,
    correct_iy,
    load_dlpvc_model,
    segment_rows,
    total_activity_bq,
)
from DosimetryCore import io
from DosimetryCore.core.progress import terminal_progress
from DosimetryCore.core.volume import require_image, resample_to, same_geometry


def _check_paths(arguments: argparse.Namespace) -> None:
    """Refuse bad options before any computation, so that nothing is written on error."""
    if arguments.method == "iy" and not arguments.seg:
        raise ValueError("--seg: IY-PVC needs a labelmap of the regions whose activity it restores")
    if arguments.table and not arguments.seg:
        raise ValueError("--table: needs --seg (the labelmap whose segments the table lists)")
    if not Path(arguments.output).name.lower().endswith(io.VOLUME_SUFFIXES):
        formats = ", ".join(io.VOLUME_SUFFIXES)
        raise ValueError(f"--output: {arguments.output} is not one of the volume formats {formats}")
    if arguments.table and Path(arguments.table).suffix.lower() != ".csv":
        raise ValueError(f"--table: {arguments.table} must be a .csv file")


def read_segments(path: str | Path, image: sitk.Image) -> tuple[sitk.Image, dict[int, str]]:
    """A labelmap file on the grid of ``image`` and its segment names.

    Names come from the file's metadata (:func:`DosimetryCore.dose.label_names`). A labelmap on
    another grid is resampled onto the SPECT's by nearest neighbour; a segment left without a voxel
    there (outside the SPECT's field of view, or smaller than a voxel) is an error.
    """
    from DosimetryCore.dose import label_names

    labelmap = require_image(io.read_image(path), f"--seg {path}")
    if sitk.GetArrayViewFromImage(labelmap).dtype.kind not in "iu":
        raise ValueError(f"--seg: {path} holds {labelmap.GetPixelIDTypeAsString()} values, expected integer labels")
    names = label_names(labelmap)
    if not names:
        raise ValueError(f"--seg: {path} holds no segment (no label > 0)")
    if not same_geometry(labelmap, image):
        labelmap = resample_to(labelmap, image, "nearest")
    present = set(np.unique(sitk.GetArrayViewFromImage(labelmap)).tolist())
    empty = [f"{name!r} (label {label})" for label, name in names.items() if label not in present]
    if empty:
        raise ValueError(
            f"--seg: segment(s) {', '.join(empty)} have no voxel on the SPECT grid "
            "(outside its field of view, or smaller than a voxel)"
        )
    return labelmap, names


def write_table_csv(rows: Sequence[Mapping[str, object]], path: str | Path) -> Path:
    """Write :func:`DLPVCLib.correction.segment_rows` rows as CSV (the units are in the column names)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _run_pvc(arguments: argparse.Namespace) -> int:
    _check_paths(arguments)
    image = io.read_image(arguments.input)
    segments = read_segments(arguments.seg, image) if arguments.seg else None
    progress = terminal_progress()
    if arguments.method == "iy":
        corrected = correct_iy(image, *segments, arguments.fwhm_mm, arguments.iterations, progress)
    else:
        model = load_dlpvc_model(arguments.model, device=arguments.device)
        corrected = correct_dl(image, model, progress=progress)
        for limitation in model.card.get("limitations", []):
            print(f"note ({model.name} model card): {limitation}", file=sys.stderr)
    rows = segment_rows(image, corrected, *segments) if segments else []
    path = io.write_image(corrected, arguments.output)
    print(
        f"{path}: {arguments.method.upper()}-PVC, total activity {total_activity_bq(image) / 1e6:.6g} MBq before, "
        f"{total_activity_bq(corrected) / 1e6:.6g} MBq after"
    )
    for row in rows:
        print(
            f"  {row['segment']}: {row['volume_ml']:.4g} mL, mean {row['mean_before_Bq_per_mL']:.4g} -> "
            f"{row['mean_after_Bq_per_mL']:.4g} Bq/mL"
        )
    if arguments.table:
        print(f"{write_table_csv(rows, arguments.table)}: per-segment table")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pvc`` sub-command to the ``deepdosimetry`` command's sub-parsers."""
    pvc = subparsers.add_parser(
        "pvc", help="partial-volume correction of 177Lu SPECT (Bq/mL): DL-PVC network or iterative Yang"
    )
    pvc.add_argument("--input", required=True, help="SPECT image, activity concentration in Bq/mL")
    pvc.add_argument("--method", choices=("dl", "iy"), required=True, help="dl: DL-PVC network; iy: iterative Yang")
    pvc.add_argument("--output", required=True, help="corrected image file (Bq/mL, e.g. OUT.nrrd)")
    pvc.add_argument("--seg", help="labelmap of the segments: IY-PVC regions (required for iy) and table rows")
    pvc.add_argument("--table", help="per-segment CSV: volume, mean before/after (Bq/mL), activity before/after (MBq)")
    pvc.add_argument(
        "--fwhm-mm",
        type=float,
        nargs=3,
        metavar=("X", "Y", "Z"),
        default=(DEFAULT_FWHM_MM,) * 3,
        help=f"iy: PSF FWHM in mm along x, y, z (default {DEFAULT_FWHM_MM:g} each: Siemens MELP at 200 mm)",
    )
    pvc.add_argument("--iterations", type=int, default=10, help="iy: iterations (default 10)")
    pvc.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"dl: model under Resources/Models (default {DEFAULT_MODEL})"
    )
    pvc.add_argument("--device", default=None, help="dl: cpu, cuda, ... (default: cuda when available)")
    pvc.set_defaults(handler=_run_pvc)
