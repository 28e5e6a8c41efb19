"""Node-level logic of the DoseRateCNN module: MRML nodes in, nodes out, inputs never changed.

No ``slicer`` import here: nodes are converted through :mod:`DosimetryCore.io.mrml`. The dose-rate
methods are DosimetryCore's (:mod:`DosimetryCore.dose`): voxel dose kernels with density scaling
(the baseline of seed 002), local energy deposition and Monte Carlo; and the method of seed 002, the residual
CNN on the VDK dose rate (:mod:`DoseRateCNNLib.cnn`), with an installed model.
"""

from __future__ import annotations

import SimpleITK as sitk

from DoseRateCNNLib.constants import CNN_METHOD, METHODS
from DosimetryCore import dose
from DosimetryCore.core.metadata import UNIT_KEY
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.units import ACTIVITY_UNIT, DOSE_RATE_UNIT
from DosimetryCore.core.validation import check_activity_image
from DosimetryCore.core.volume import unit_of
from DosimetryCore.evaluation.histograms import cumulative_histograms, plot_histograms
from DosimetryCore.io import mrml

DOSE_VOLUME_PERCENTS = (2.0, 50.0, 98.0)

TABLE_UNITS = {
    "volume_ml": "mL",
    "mass_g": "g",
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


def dose_rate_rows(
    dose_rate: sitk.Image, labelmap: sitk.Image, names: dict[int, str], ct: sitk.Image
) -> list[dict[str, object]]:
    """Per-segment rows: segment, volume (mL), mass (g, from the CT), mean, max and D2/D50/D98 % dose rates (Gy/h)."""
    rows = dose.segment_table(dose_rate, labelmap, names, DOSE_VOLUME_PERCENTS, ct=ct)
    return [
        {
            "segment": row["segment"],
            "volume_ml": row["volume_ml"],
            "mass_g": row["mass_g"],
            "mean_Gy_per_h": row["mean"],
            "max_Gy_per_h": row["max"],
            **{f"D{x:g}%_Gy_per_h": row[f"D{x:g}%"] for x in DOSE_VOLUME_PERCENTS},
        }
        for row in rows
    ]


def _compute(activity: sitk.Image, ct: sitk.Image, method: str, model_name: str | None, device, report):
    if method != CNN_METHOD:
        return dose.compute_dose_rate(activity, ct, method, device=device, progress=sub_progress(report, 0.05, 0.85))
    from DoseRateCNNLib.cnn import DEFAULT_MODEL, cnn_dose_rate, load_dose_model

    model, card = load_dose_model(model_name or DEFAULT_MODEL, device)
    return cnn_dose_rate(activity, ct, model, card, device=device, progress=sub_progress(report, 0.05, 0.85))


def dose_rate_map(
    activity_node,
    ct_node,
    method: str = "vdk",
    segmentation_node=None,
    *,
    model_name: str | None = None,
    device: str | None = None,
    output_volume=None,
    output_table=None,
    histogram_png: str | None = None,
    progress: ProgressCallback | None = None,
):
    """Write the absorbed dose rate (Gy/h) of ``activity_node`` into a volume node (and a table and histograms).

    The CT is resampled onto the activity grid. ``method`` is ``"vdk"`` (177Lu voxel dose kernel of
    the activity voxel size, times 1.04 g/cm^3 over the CT density; seed 002), ``"led"`` (local
    deposition of the electron energy), ``"mc"`` (the project's Monte Carlo) or ``"cnn"`` (the residual CNN on
    the VDK dose rate with the installed model ``model_name``, default ``dose-cnn``). With a segmentation, a
    table gives each segment's volume, mass, mean, max and D2/D50/D98 % dose rates, and a plot chart node the
    cumulative dose-rate-volume histogram of each segment (also drawn into ``histogram_png`` when given). Given
    output nodes are filled, missing ones added. Returns ``(dose-rate node, table node or None, chart node or
    None)``. Inputs are never modified; on invalid input nothing is written. Warnings (input outside a model's
    training domain, doubtful activity) are in the node's provenance and returned by
    :func:`DosimetryCore.io.mrml.warnings_of`.
    """
    report = progress or no_progress
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    if model_name is not None and method != CNN_METHOD:
        raise ValueError(f"model: only the {CNN_METHOD} method takes a model, not {method}")
    inputs = {"activity volume": activity_node, "CT volume": ct_node, "segmentation": segmentation_node}
    mrml.check_output_nodes(inputs, output_volume, output_table)
    report(0.0, "Reading activity and CT")
    activity = activity_image(activity_node)
    ct = dose.ct_on_activity_grid(ct_image(ct_node), activity, f"CT volume {ct_node.GetName()!r}")
    labelmap, names = (None, None)
    if segmentation_node is not None:
        labelmap, names = mrml.labelmap_from_segmentation_node(segmentation_node, activity_node)
    result = _compute(activity, ct, method, model_name, device, report)
    rows = dose_rate_rows(result.image, labelmap, names, ct) if labelmap is not None else None
    report(0.9, "Writing dose-rate volume")
    scene = activity_node.GetScene()
    name = f"{activity_node.GetName()} dose rate {method}"
    output_volume = mrml.volume_into(output_volume, scene, result.image, name)
    chart = None
    if rows is not None:
        name = f"{activity_node.GetName()} dose rate"
        output_table = mrml.table_into(output_table, scene, rows, name, TABLE_UNITS)
        axis, curves = cumulative_histograms(
            sitk.GetArrayFromImage(result.image), sitk.GetArrayFromImage(labelmap), names
        )
        title = f"{activity_node.GetName()} dose-rate-volume histograms ({method})"
        chart = mrml.add_plot_chart(
            scene, axis, curves, title, f"dose rate ({DOSE_RATE_UNIT})", "volume receiving at least (%)"
        )
        if histogram_png:
            plot_histograms(axis, curves, histogram_png, DOSE_RATE_UNIT, title)
    report(1.0, "Done")
    return output_volume, output_table if rows is not None else None, chart
