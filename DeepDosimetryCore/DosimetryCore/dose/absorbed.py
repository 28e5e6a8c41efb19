"""Absorbed dose (Gy) of a therapy cycle from dose-rate or activity maps at several time points.

Each time point is a dose-rate image (Gy/h, e.g. from ``dose-rate`` or the DoseRateCNN panel) or an activity
image (Bq/mL: a SPECT, a DL-PVC or PlanarTo3D output; turned into a dose rate on its own grid by
:func:`~DosimetryCore.dose.images.compute_dose_rate`, VDK by default), its CT (HU) and its time after
administration (h). The first time point is the reference: the others are registered onto it through their
CTs (:func:`DosimetryCore.imaging.registration.register_ct`) and their dose rates moved onto its grid. Then
(:mod:`DosimetryCore.dose.time_integration`):

- per voxel, the absorbed-dose map: a log-linear mono-exponential per voxel, the trapezoid with a physical tail
  where that fails, or with one time point the single-time-point method with the stated effective half-life;
- per segment, the mean dose rate at each time point is fitted (the model named, or chosen by AICc) and
  integrated, with its fit uncertainty; the table adds D2/D50/D98 of the voxel map inside the segment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..core.progress import ProgressCallback, no_progress
from ..core.provenance import stamp
from ..core.units import DOSE_RATE_UNIT
from ..core.volume import array_from_image, image_from_array, require_same_geometry, set_unit, unit_of
from ..evaluation.segments import segment_statistics
from ..imaging.registration import register_ct
from .images import compute_dose_rate, ct_on_activity_grid
from .time_integration import integrate_segment, integrate_voxels, physical_decay_per_h

ABSORBED_DOSE_UNIT = "Gy"
DOSE_VOLUME_PERCENTS = (2.0, 50.0, 98.0)


RESAMPLING = sitk.sitkBSpline
"""How a later time point's dose rate is moved onto the reference grid: cubic B-spline (its small negative
overshoots are clipped). Linear interpolation blurs: on the demo's sharp kidney dose rates a moved and moved-back
map lost 11 % of the kidney mean with linear interpolation, 3.4 % with cubic B-spline."""
ACTIVITY_UNIT = "Bq/mL"
INPUT_UNITS = (DOSE_RATE_UNIT, ACTIVITY_UNIT)
"""What a time point's image may hold: a dose rate, or an activity concentration turned into one."""


@dataclass(frozen=True)
class TimePoint:
    """One acquisition: ``time_h`` after administration, its dose rate (Gy/h) or activity (Bq/mL) image, and its
    CT (HU)."""

    time_h: float
    image: sitk.Image
    ct: sitk.Image


@dataclass(frozen=True)
class AbsorbedDose:
    """The result of :func:`absorbed_dose`.

    Attributes:
        image: absorbed dose (Gy, float32) on the reference time point's grid, with its provenance.
        rows: per segment: segment, label, volume_ml, mean_Gy (segment fit), uncertainty_Gy (1 sd, NaN when the fit
            cannot say), model, effective_half_life_h, aicc, voxel_mean_Gy and D2/D50/D98 % of the map (Gy).
        curves: per segment, its mean dose rate (Gy/h) at each time point (after registration).
        times_h: the time points.
        registrations: per time point: translation (mm), rotation (deg), CT correlation before and after.
    """

    image: sitk.Image
    rows: list[dict[str, Any]]
    curves: dict[str, list[float]]
    times_h: list[float]
    registrations: list[dict[str, Any]]


def _checked(timepoints: Sequence[TimePoint], effective_half_life_h: float | None) -> list[TimePoint]:
    points = list(timepoints)
    if not points:
        raise ValueError("timepoints: give at least one time point")
    times = [point.time_h for point in points]
    if any(not (math.isfinite(t) and t > 0) for t in times) or any(np.diff(times) <= 0):
        raise ValueError(f"timepoints: times must be > 0 h after administration and strictly increasing, got {times}")
    if len(points) == 1 and effective_half_life_h is None:
        raise ValueError("timepoints: one time point needs --half-life-h (the effective half-life, single-time-point)")
    for point in points:
        unit = unit_of(point.image)
        if unit not in INPUT_UNITS:
            said = f"says {unit!r}" if unit is not None else "states no unit"
            raise ValueError(
                f"timepoint {point.time_h:g} h: expected a dose rate in {DOSE_RATE_UNIT} or an activity in "
                f"{ACTIVITY_UNIT}; the image {said}"
            )
        if point.ct is None:
            raise ValueError(f"timepoint {point.time_h:g} h: a CT is needed to register it")
    return points


def _dose_rates(points: list[TimePoint], activity_method: str, report: ProgressCallback) -> list[sitk.Image]:
    """Each time point's dose rate (Gy/h): as given, or computed from its activity with ``activity_method``."""
    rates = []
    for point in points:
        if unit_of(point.image) == ACTIVITY_UNIT:
            report(0.0, f"dose rate of the activity at {point.time_h:g} h ({activity_method})")
            ct = ct_on_activity_grid(point.ct, point.image, f"CT of {point.time_h:g} h")
            rates.append(compute_dose_rate(point.image, ct, activity_method).image)
        else:
            rates.append(point.image)
    return rates


def absorbed_dose(
    timepoints: Sequence[TimePoint],
    labelmap: sitk.Image | None = None,
    names: Mapping[int, str] | None = None,
    *,
    model: str | None = None,
    effective_half_life_h: float | None = None,
    register: bool = True,
    deformable: bool = False,
    activity_method: str = "vdk",
    nuclide: str = "Lu-177",
    progress: ProgressCallback | None = None,
) -> AbsorbedDose:
    """Absorbed dose from dose rates (or activities) at several time points (see the module docstring).

    Args:
        timepoints: in increasing time; the first is the reference grid.
        labelmap, names: segments on the reference grid (optional) and their names.
        model: ``mono``, ``bi`` or ``trapezoid`` for every segment (None: chosen per segment by AICc).
        effective_half_life_h: needed with one time point.
        register: register every later CT onto the first (off: the images are taken as aligned).
        deformable: add a B-spline refinement to the rigid registration.
        activity_method: how an activity time point becomes a dose rate (``vdk``, ``led`` or ``mc``).
    """
    report = progress or no_progress
    points = _checked(timepoints, effective_half_life_h)
    rates = _dose_rates(points, activity_method, report)
    reference, reference_rate = points[0], rates[0]
    reference_ct = ct_on_activity_grid(reference.ct, reference_rate, f"CT of {reference.time_h:g} h")
    moved, registrations = (
        [array_from_image(reference_rate).astype(np.float64)],
        [{"time_h": reference.time_h, "reference": True}],
    )
    for index, (point, rate) in enumerate(zip(points[1:], rates[1:], strict=True), start=1):
        report(0.6 * index / len(points), f"registering {point.time_h:g} h onto {reference.time_h:g} h")
        if register:
            registration = register_ct(reference_ct, point.ct, deformable)
            transform = registration.transform
            registrations.append({
                "time_h": point.time_h, "translation_mm": registration.translation_mm,
                "rotation_deg": registration.rotation_deg, "ct_correlation_before": registration.correlation_before,
                "ct_correlation_after": registration.correlation_after, "deformable": deformable,
            })  # fmt: skip
        else:
            transform = sitk.Transform()
            registrations.append({"time_h": point.time_h, "registered": False})
        resampled = sitk.Resample(sitk.Cast(rate, sitk.sitkFloat32), reference_rate, transform,
                                  RESAMPLING, 0.0)  # fmt: skip
        moved.append(array_from_image(resampled).astype(np.float64))
    times = [point.time_h for point in points]
    stack = np.clip(np.stack(moved), 0.0, None)
    report(0.7, "integrating every voxel")
    if len(points) == 1:
        decay = math.log(2) / effective_half_life_h
        dose = stack[0] * math.exp(decay * times[0]) / decay
        voxel_model = "single time point"
    else:
        dose, _ = integrate_voxels(times, stack, nuclide)
        voxel_model = "mono-exponential per voxel (log-linear), trapezoid with physical tail where it fails"
    image = set_unit(
        image_from_array(dose.astype(np.float32), reference_rate), ABSORBED_DOSE_UNIT, "absorbed dose"
    )
    rows, curves = [], {}
    if labelmap is not None:
        report(0.85, "integrating every segment")
        rows, curves = _segment_rows(stack, dose, times, labelmap, names, reference_rate, model,
                                     effective_half_life_h, nuclide)  # fmt: skip
    stamp(image, {
        "method": "absorbed dose from dose rates at several time points",
        "times_h": times, "voxel_model": voxel_model, "segment_model": model or "chosen per segment by AICc",
        "physical_decay_per_h": physical_decay_per_h(nuclide), "nuclide": nuclide,
        "effective_half_life_h": effective_half_life_h, "registrations": registrations,
        "inputs": [{"time_h": p.time_h, "unit": unit_of(p.image),
                    **({"dose_rate_method": activity_method} if unit_of(p.image) == ACTIVITY_UNIT else {})}
                   for p in points],
    })  # fmt: skip
    report(1.0, "absorbed dose done")
    return AbsorbedDose(image, rows, curves, times, registrations)


def _segment_rows(stack, dose, times, labelmap, names, reference, model, half_life, nuclide):
    require_same_geometry(labelmap, reference, "seg", "reference dose rate")
    labels = array_from_image(labelmap)
    names = dict(names) if names is not None else {int(v): f"segment {v}" for v in np.unique(labels) if v > 0}
    statistics = segment_statistics(dose, labels, names, float(np.prod(reference.GetSpacing())) / 1000.0,
                                    dose_volume_percents=DOSE_VOLUME_PERCENTS)  # fmt: skip
    rows, curves = [], {}
    for row in statistics:
        inside = labels == row["label"]
        series = [float(frame[inside].mean()) for frame in stack]
        curves[row["segment"]] = series
        fit = integrate_segment(times, series, model=model, nuclide=nuclide, effective_half_life_h=half_life)
        rows.append({
            "segment": row["segment"], "label": row["label"], "volume_ml": row["volume_ml"],
            "mean_Gy": fit.integral, "uncertainty_Gy": fit.uncertainty, "model": fit.model,
            "effective_half_life_h": fit.effective_half_life_h if fit.effective_half_life_h is not None else math.nan,
            "aicc": fit.aicc if fit.aicc is not None else math.nan, "voxel_mean_Gy": row["mean"],
            **{f"D{x:g}%_Gy": row[f"D{x:g}%"] for x in DOSE_VOLUME_PERCENTS},
        })  # fmt: skip
    return rows, curves
