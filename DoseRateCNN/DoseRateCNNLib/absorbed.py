"""Node-level absorbed dose of the DoseRateCNN module: dose-rate (or activity) volume nodes at several time points
in, an absorbed-dose volume, a per-segment table and charts out (:func:`DosimetryCore.dose.absorbed.absorbed_dose`).

No ``slicer`` import here: nodes are converted through :mod:`DosimetryCore.io.mrml`. Inputs are never changed.
"""

from __future__ import annotations

from collections.abc import Sequence

from DosimetryCore.core.acquisition_time import hours_from_images, parse_datetime
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.provenance import read, stamp
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


def _time_points(timepoints, administration: str | None) -> tuple[list[TimePoint], list[str]]:
    """The :class:`TimePoint` of each ``(time_h or None, image node, CT node)``; a None time is read from the
    node's (else its CT's) acquisition time, after ``administration``; with a line saying so."""
    administered = parse_datetime(administration, "administration time") if administration else None
    points, notes = [], []
    for index, (time_h, image_node, ct_node) in enumerate(timepoints, start=1):
        if image_node is None or ct_node is None:
            raise ValueError(f"time point {index}: needs a dose-rate (or activity) volume and its CT volume")
        image, ct = mrml.image_from_volume_node(image_node), ct_image(ct_node)
        if time_h is None:
            if administered is None:
                raise ValueError(
                    f"time point {index} ({image_node.GetName()!r}): give its hours after administration, or the "
                    "administration date and time to read it from the DICOM acquisition time"
                )
            time_h, acquired = hours_from_images([image, ct], administered, f"time point {index}")
            notes.append(f"{image_node.GetName()}: acquired {acquired.isoformat()} = {time_h:.2f} h")
        points.append(TimePoint(float(time_h), image, ct))
    return points, notes


def absorbed_dose_map(
    timepoints: Sequence[tuple[float | None, object, object]],
    segmentation_node=None,
    *,
    model: str | None = None,
    effective_half_life_h: float | None = None,
    register: bool = True,
    deformable: bool = False,
    administration: str | None = None,
    output_volume=None,
    output_table=None,
    progress: ProgressCallback | None = None,
):
    """Absorbed dose (Gy) from ``(hours after administration, dose-rate (Gy/h) or activity (Bq/mL) node, CT node
    (HU))`` per time point, in increasing time (the first is the reference grid). A time of None is read from the
    node's DICOM acquisition time (else its CT's) after ``administration`` (local date and time, ISO 8601).

    Returns ``(absorbed-dose node, table node or None, time-dose-rate chart or None, dose-volume chart or None)``;
    with a segmentation, the table lists each segment's absorbed dose, fit uncertainty, model, effective
    half-life and D2/D50/D98, and the charts its mean dose rate over time and its dose-volume histogram. Given
    output nodes are filled, missing ones added; inputs are never changed and on invalid input nothing is written.
    """
    report = progress or no_progress
    if not timepoints:
        raise ValueError("timepoints: give at least one (time, dose-rate node, CT node)")
    nodes = {f"time point {i + 1} {kind}": node for i, (_, image, ct) in enumerate(timepoints)
             for kind, node in (("volume", image), ("CT", ct))}  # fmt: skip
    mrml.check_output_nodes({**nodes, "segmentation": segmentation_node}, output_volume, output_table)
    points, notes = _time_points(timepoints, administration)
    reference = timepoints[0][1]
    labelmap, names = (None, None)
    if segmentation_node is not None:
        labelmap, names = mrml.labelmap_from_segmentation_node(segmentation_node, reference)
    result = absorbed_dose(
        points, labelmap, names, model=model, effective_half_life_h=effective_half_life_h, register=register,
        deformable=deformable, progress=sub_progress(report, 0.0, 0.9),
    )  # fmt: skip
    if notes:
        stamp(result.image, {**read(result.image), "administration": administration, "times_read": notes})
    scene = reference.GetScene()
    output_volume = mrml.volume_into(output_volume, scene, result.image, f"{reference.GetName()} absorbed dose")
    if labelmap is None:
        report(1.0, "Done")
        return output_volume, None, None, None
    output_table = mrml.table_into(output_table, scene, result.rows, f"{reference.GetName()} absorbed dose",
                                   TABLE_UNITS)
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
    return output_volume, output_table, curves, dvh
