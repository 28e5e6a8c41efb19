"""Node-level logic of the DLPVC module: MRML nodes in, new nodes out, inputs never changed.

No ``slicer`` import here: nodes are converted through :mod:`DosimetryCore.mrml`, so the same
functions run in the Slicer application, in Slicer batch mode and in plain Python with
``slicer-core``.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from DosimetryCore import metrics, mrml
from DosimetryCore.progress import ProgressCallback, no_progress
from DosimetryCore.volume import voxel_volume_ml

ACTIVITY_UNIT = "Bq/mL"

TABLE_UNITS = {
    "volume_ml": "mL",
    "mean_Bq_per_mL": "Bq/mL",
    "max_Bq_per_mL": "Bq/mL",
    "activity_MBq": "MBq",
}


def spect_image(spect_node) -> sitk.Image:
    """The SPECT volume as an image, checked to be a finite, non-negative activity map in Bq/mL."""
    image = mrml.image_from_volume_node(spect_node)
    unit = image.GetMetaData("deepdosimetry.unit") if image.HasMetaDataKey("deepdosimetry.unit") else None
    if unit not in (None, ACTIVITY_UNIT):
        raise ValueError(f"SPECT volume {spect_node.GetName()!r}: unit is {unit}, expected {ACTIVITY_UNIT}")
    values = sitk.GetArrayViewFromImage(image)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"SPECT volume {spect_node.GetName()!r}: contains NaN or infinite values")
    if values.min() < 0:
        raise ValueError(f"SPECT volume {spect_node.GetName()!r}: contains negative activity ({values.min():g} Bq/mL)")
    if not values.any():
        raise ValueError(f"SPECT volume {spect_node.GetName()!r}: is zero everywhere")
    return image


def segment_activity_rows(image: sitk.Image, labelmap: sitk.Image, names: dict[int, str]) -> list[dict[str, object]]:
    """Per-segment rows: segment, volume (mL), mean and max (Bq/mL), activity (MBq)."""
    statistics = metrics.segment_statistics(
        sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(labelmap), names, voxel_volume_ml(image)
    )
    return [
        {
            "segment": row["segment"],
            "volume_ml": row["volume_ml"],
            "mean_Bq_per_mL": row["mean"],
            "max_Bq_per_mL": row["max"],
            "activity_MBq": row["sum_times_volume"] / 1e6,
        }
        for row in statistics
    ]


def segment_activity_table(spect_node, segmentation_node, table_node=None, progress: ProgressCallback | None = None):
    """Write the activity in each segment of ``segmentation_node`` into a table node.

    Segments are rasterised on the SPECT grid. ``table_node`` is filled when given, else a new
    one named after the SPECT volume is added. Returns the table node. Nothing is written when
    an input is invalid.
    """
    progress = progress or no_progress
    progress(0.0, "Reading SPECT volume")
    image = spect_image(spect_node)
    if segmentation_node is None:
        raise ValueError("segmentation: a segmentation node is required for the segment table")
    progress(0.3, "Rasterising segments")
    labelmap, names = mrml.labelmap_from_segmentation_node(segmentation_node, spect_node)
    progress(0.6, "Computing segment statistics")
    rows = segment_activity_rows(image, labelmap, names)
    if table_node is None:
        table_node = mrml.add_table_node(
            spect_node.GetScene(), rows, f"{spect_node.GetName()} segment activity", units=TABLE_UNITS
        )
    else:
        mrml.update_table_node(table_node, rows, units=TABLE_UNITS)
    progress(1.0, "Done")
    return table_node
