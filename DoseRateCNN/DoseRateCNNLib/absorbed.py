"""Node-level absorbed dose of the DoseRateCNN module: dose-rate volume nodes at several time points in, an
absorbed-dose volume, a per-segment table and charts out (:func:`DosimetryCore.dose.absorbed.absorbed_dose`).

No ``slicer`` import here: nodes are converted through :mod:`DosimetryCore.io.mrml`. Inputs are never changed.
"""

from __future__ import annotations

from collections.abc import Sequence

from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.volume import array_from_image
from DosimetryCore.dose.absorbed import ABSORBED_DOSE_UNIT, TimePoint, absorbed_dose
from DosimetryCore.evaluation.histograms import cumulative_histograms
from DosimetryCore.io import mrml

from .logic import ct_image

TABLE_UNITS = {
    "volume_ml": "mL",
    "mean_Gy": "Gy",
    "uncertainty_Gy": "Gy",
    "effective_half_life_h": "h",
    "voxel_mean_Gy": "Gy",
    "D2%_Gy": "Gy",
    "D50%_Gy": "Gy",
    "D98%_Gy": "Gy",
}


def absorbed_dose_map(
    timepoints: Sequence[tuple[float, object, object]],
    segmentation_node=None,
    *,
    model: str | None = None,
    effective_half_life_h: float | None = None,
    register: bool = True,
    progress: ProgressCallback | None = None,
):
    """Absorbed dose (Gy) from ``(time after administration in h, dose-rate node (Gy/h), CT node (HU))`` per
    time point, in increasing time (the first is the reference grid).

    Returns ``(absorbed-dose node, table node or None, time-dose-rate chart or None, dose-volume chart or None)``;
    with a segmentation, the table lists each segment's absorbed dose, fit uncertainty, model, effective
    half-life and D2/D50/D98, and the charts its mean dose rate over time and its dose-volume histogram.
    """
    report = progress or no_progress
    if not timepoints:
        raise ValueError("timepoints: give at least one (time, dose-rate node, CT node)")
    for time_h, rate_node, ct_node in timepoints:
        if rate_node is None or ct_node is None:
            raise ValueError(f"timepoint {time_h:g} h: needs a dose-rate volume and its CT volume")
    points = [
        TimePoint(float(time_h), mrml.image_from_volume_node(rate_node), ct_image(ct_node))
        for time_h, rate_node, ct_node in timepoints
    ]
    reference = timepoints[0][1]
    labelmap, names = (None, None)
    if segmentation_node is not None:
        labelmap, names = mrml.labelmap_from_segmentation_node(segmentation_node, reference)
    result = absorbed_dose(
        points, labelmap, names, model=model, effective_half_life_h=effective_half_life_h, register=register,
        progress=sub_progress(report, 0.0, 0.9),
    )  # fmt: skip
    scene = reference.GetScene()
    volume = mrml.add_volume_node(scene, result.image, f"{reference.GetName()} absorbed dose")
    if labelmap is None:
        report(1.0, "Done")
        return volume, None, None, None
    table = mrml.add_table_node(scene, result.rows, f"{reference.GetName()} absorbed dose", TABLE_UNITS)
    curves = mrml.add_plot_chart(
        scene, result.times_h, result.curves, "time-dose-rate curves", "time after administration (h)",
        "mean dose rate (Gy/h)",
    )  # fmt: skip
    axis, histograms = cumulative_histograms(array_from_image(result.image), array_from_image(labelmap), names)
    dvh = mrml.add_plot_chart(
        scene, axis, histograms, "dose-volume histograms", f"absorbed dose ({ABSORBED_DOSE_UNIT})",
        "volume receiving at least (%)",
    )  # fmt: skip
    report(1.0, "Done")
    return volume, table, curves, dvh
