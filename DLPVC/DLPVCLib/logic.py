"""Node-level logic of the DLPVC module: MRML nodes in, new or chosen output nodes out, inputs never changed.

No ``slicer`` import here: nodes are converted through :mod:`DosimetryCore.io.mrml`, so the same
functions run in the Slicer application, in Slicer batch mode and in plain Python with
``slicer-core``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from DLPVCLib.constants import DEFAULT_FWHM_MM, DEFAULT_MODEL
from DLPVCLib.correction import TABLE_UNITS, correct_dl, correct_iy, load_dlpvc_model, segment_rows
from DLPVCLib.iterative_yang import NEGATIVE_TOLERANCE
from DosimetryCore.core import provenance
from DosimetryCore.core.acquisition_time import carry_acquisition_time
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.validation import activity_notes, check_activity_image
from DosimetryCore.io import mrml

METHODS = {"iy": "IY-PVC", "dl": "DL-PVC"}
"""Method key -> name used in node names and messages."""


def spect_image(spect_node, negative_tolerance: float = 0.0) -> sitk.Image:
    """The SPECT volume as an image, checked to be a 3D, finite activity map in Bq/mL, non-negative (down to
    ``-negative_tolerance`` times its maximum)."""
    image = mrml.image_from_volume_node(spect_node)
    check_activity_image(image, f"SPECT volume {spect_node.GetName()!r}", negative_tolerance)
    return image


def segment_labelmap(segmentation_node, spect_node) -> tuple[sitk.Image, dict[int, str]]:
    """Rasterise every segment onto the SPECT grid: ``(labelmap, {label: segment name})``.

    A segmentation on another grid is resampled by Slicer's export; a segment left without a voxel
    of the SPECT grid (outside its field of view, or smaller than a voxel) is an error.
    """
    labelmap, names = mrml.labelmap_from_segmentation_node(segmentation_node, spect_node)
    present = set(np.unique(sitk.GetArrayViewFromImage(labelmap)).tolist())
    empty = [repr(name) for label, name in names.items() if label not in present]
    if empty:
        raise ValueError(
            f"segmentation {segmentation_node.GetName()!r}: segment(s) {', '.join(empty)} have no voxel on the grid "
            f"of SPECT volume {spect_node.GetName()!r} (outside its field of view, or smaller than a voxel)"
        )
    return labelmap, names


def correct_volume(
    spect_node,
    method: str,
    segmentation_node=None,
    *,
    fwhm_mm: Sequence[float] = (DEFAULT_FWHM_MM,) * 3,
    iterations: int = 10,
    model_name: str = DEFAULT_MODEL,
    models_folder: str | Path | None = None,
    device: str | None = None,
    output_volume=None,
    output_table=None,
    progress: ProgressCallback | None = None,
):
    """Partial-volume correct a SPECT volume node and write the result (and a per-segment table).

    Args:
        spect_node: scalar volume node, activity concentration in Bq/mL. Never modified.
        method: ``"iy"`` (iterative Yang PVC, needs ``segmentation_node``) or ``"dl"`` (DL-PVC).
        segmentation_node: segments rasterised onto the SPECT grid: the IY-PVC regions and the
            rows of the table. Optional for DL-PVC (no table without it). Never modified.
        fwhm_mm: IY-PVC PSF FWHM (mm) along the SPECT's x, y, z axes.
        iterations: IY-PVC iterations (>= 1).
        model_name: DL-PVC model under ``models_folder`` (default ``Resources/Models``).
        device: DL-PVC torch device (``None``/``"auto"``: CUDA when available).
        output_volume: scalar volume node to fill with the corrected SPECT (Bq/mL); a new one is
            added when None.
        output_table: table node to fill with volume (mL), mean before/after (Bq/mL) and activity
            before/after (MBq) per segment; a new one is added when None. Only with a segmentation.
        progress: ``progress(fraction, message)``; raising :class:`DosimetryCore.core.progress.Cancelled`
            from it cancels, and nothing is written.

    Returns:
        ``(volume node, table node or None)``.

    Raises:
        ValueError: on invalid input (the message names it); nothing is written.
    """
    report = progress or no_progress
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    mrml.check_output_nodes({"SPECT volume": spect_node}, output_volume, output_table)
    if method == "iy" and segmentation_node is None:
        raise ValueError("segmentation: IY-PVC needs a segmentation (the regions whose activity it restores)")
    report(0.0, "Reading the SPECT volume")
    image = spect_image(spect_node, NEGATIVE_TOLERANCE if method == "iy" else 0.0)
    labelmap, names = segment_labelmap(segmentation_node, spect_node) if segmentation_node else (None, None)
    if method == "iy":
        corrected = correct_iy(image, labelmap, names, fwhm_mm, iterations, sub_progress(report, 0.1, 0.9))
    else:
        report(0.05, f"Loading DL-PVC model {model_name}")
        model = load_dlpvc_model(model_name, models_folder, device)
        corrected = correct_dl(image, model, progress=sub_progress(report, 0.1, 0.9))
    provenance.add_warnings(corrected, activity_notes(image, f"SPECT volume {spect_node.GetName()!r}"))
    carry_acquisition_time(image, corrected)
    rows = segment_rows(image, corrected, labelmap, names) if labelmap is not None else None
    report(1.0, "Writing the results")
    volume = _write_volume(spect_node, corrected, METHODS[method], output_volume)
    return volume, _write_table(spect_node, rows, output_table)


def _write_volume(spect_node, image: sitk.Image, method_name: str, output_volume):
    return mrml.volume_into(output_volume, spect_node.GetScene(), image, f"{spect_node.GetName()} {method_name}")


def _write_table(spect_node, rows: list[dict[str, object]] | None, output_table):
    if rows is None:
        return None
    return mrml.table_into(output_table, spect_node.GetScene(), rows, f"{spect_node.GetName()} PVC segments",
                           TABLE_UNITS)
