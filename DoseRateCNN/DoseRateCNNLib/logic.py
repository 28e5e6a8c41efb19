"""Node-level logic of the DoseRateCNN module: MRML nodes in, nodes out, inputs never changed.

No ``slicer`` import here: nodes are converted through :mod:`DosimetryCore.io.mrml`. The dose-rate
methods are DosimetryCore's (:mod:`DosimetryCore.dose`): voxel dose kernels with density scaling
(the baseline of seed 002), local energy deposition and Monte Carlo.
"""

from __future__ import annotations

import SimpleITK as sitk

from DoseRateCNNLib.constants import METHODS
from DosimetryCore import dose
from DosimetryCore.core.metadata import UNIT_KEY
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.units import ACTIVITY_UNIT
from DosimetryCore.core.validation import check_activity_image
from DosimetryCore.core.volume import unit_of
from DosimetryCore.io import mrml

DOSE_VOLUME_PERCENTS = (2.0, 50.0, 98.0)

TABLE_UNITS = {
    "volume_ml": "mL",
    "mean_Gy_per_h": "Gy/h",
    "max_Gy_per_h": "Gy/h",
    **{f"D{x:g}%_Gy_per_h": "Gy/h" for x in DOSE_VOLUME_PERCENTS},
}


def activity_image(activity_node) -> sitk.Image:
    """The activity volume as a float32 image, checked to hold finite, non-negative Bq/mL."""
    image = mrml.image_from_volume_node(activity_node)
    check_activity_image(image, f"activity volume {activity_node.GetName()!r}")
    image = sitk.Cast(image, sitk.sitkFloat32)
    image.SetMetaData(UNIT_KEY, ACTIVITY_UNIT)
    return image


def ct_image(ct_node) -> sitk.Image:
    """The CT volume as a float32 image in HU (its values are checked on resampling:
    :func:`DosimetryCore.dose.ct_on_activity_grid`)."""
    image = mrml.image_from_volume_node(ct_node)
    if unit_of(image) not in (None, "HU"):
        raise ValueError(f"CT volume {ct_node.GetName()!r}: unit is {unit_of(image)}, expected HU")
    image = sitk.Cast(image, sitk.sitkFloat32)
    image.SetMetaData(UNIT_KEY, "HU")
    return image


def dose_rate_rows(dose_rate: sitk.Image, labelmap: sitk.Image, names: dict[int, str]) -> list[dict[str, object]]:
    """Per-segment rows: segment, volume (mL), mean, max and D2/D50/D98 % dose rates (Gy/h)."""
    rows = dose.segment_table(dose_rate, labelmap, names, DOSE_VOLUME_PERCENTS)
    return [
        {
            "segment": row["segment"],
            "volume_ml": row["volume_ml"],
            "mean_Gy_per_h": row["mean"],
            "max_Gy_per_h": row["max"],
            **{f"D{x:g}%_Gy_per_h": row[f"D{x:g}%"] for x in DOSE_VOLUME_PERCENTS},
        }
        for row in rows
    ]


def dose_rate_map(
    activity_node,
    ct_node,
    method: str = "vdk",
    segmentation_node=None,
    *,
    device: str | None = None,
    output_volume=None,
    output_table=None,
    progress: ProgressCallback | None = None,
):
    """Write the absorbed dose rate (Gy/h) of ``activity_node`` into a volume node (and a table).

    The CT is resampled onto the activity grid. ``method`` is ``"vdk"`` (177Lu voxel dose kernel of
    the activity voxel size, times 1.04 g/cm^3 over the CT density; seed 002), ``"led"`` (local
    deposition of the electron energy) or ``"mc"`` (the project's Monte Carlo). With a segmentation,
    a table gives each segment's volume, mean, max and D2/D50/D98 % dose rates. Given output nodes
    are filled, missing ones added. Returns ``(dose-rate node, table node or None)``. Inputs are
    never modified; on invalid input nothing is written.
    """
    report = progress or no_progress
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    inputs = {"activity volume": activity_node, "CT volume": ct_node, "segmentation": segmentation_node}
    mrml.check_output_nodes(inputs, output_volume, output_table)
    report(0.0, "Reading activity and CT")
    activity = activity_image(activity_node)
    ct = dose.ct_on_activity_grid(ct_image(ct_node), activity, f"CT volume {ct_node.GetName()!r}")
    labelmap, names = (None, None)
    if segmentation_node is not None:
        labelmap, names = mrml.labelmap_from_segmentation_node(segmentation_node, activity_node)
    result = dose.compute_dose_rate(activity, ct, method, device=device, progress=sub_progress(report, 0.05, 0.9))
    rows = dose_rate_rows(result.image, labelmap, names) if labelmap is not None else None
    report(0.95, "Writing dose-rate volume")
    scene = activity_node.GetScene()
    if output_volume is None:
        output_volume = mrml.add_volume_node(scene, result.image, f"{activity_node.GetName()} dose rate {method}")
    else:
        mrml.update_volume_node_from_image(output_volume, result.image)
    if rows is not None:
        if output_table is None:
            output_table = mrml.add_table_node(scene, rows, f"{activity_node.GetName()} dose rate", TABLE_UNITS)
        else:
            mrml.update_table_node(output_table, rows, TABLE_UNITS)
    report(1.0, "Done")
    return output_volume, output_table if rows is not None else None
