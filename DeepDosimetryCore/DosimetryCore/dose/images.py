"""Dose rate maps from SimpleITK images: one entry point for the VDK, LED and Monte Carlo methods, and the
per-segment dose-rate table.

Inputs are an activity-concentration image (Bq/mL) and a CT (HU) on the same grid; outputs are images in
Gy/h on that grid (unit and provenance in the metadata), never changing the inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from ..core.acquisition_time import carry_acquisition_time
from ..core.progress import ProgressCallback, sub_progress
from ..core.provenance import stamp
from ..core.units import DOSE_RATE_UNIT, name_suffix
from ..core.validation import activity_notes, check_finite_nonnegative
from ..core.volume import (
    array_from_image,
    image_from_array,
    require_image,
    require_same_geometry,
    resample_to,
    set_unit,
    unit_of,
    voxel_volume_ml,
)
from ..evaluation.segments import segment_statistics
from ..io.labels import label_names
from ..io.tables import write_csv
from ..physics.ct import body_mask, check_ct_hu
from ..physics.tissue import density_g_per_cm3_from_hu
from .kernels import VoxelKernel, voxel_kernel
from .mc_dose_rate import simulate_dose_rate
from .montecarlo import DEFAULT_BATCHES, DEFAULT_PHOTON_HISTORIES, DEFAULT_SEED, medium_from_hu
from .vdk import DENSITY_SCALINGS, led_dose_rate, local_deposition_MeV_per_decay, vdk_dose_rate

METHODS = ("vdk", "led", "mc")
DEFAULT_DOSE_VOLUME_PERCENTS = (2.0, 50.0, 98.0)
AIR_HU = -1000.0
"""CT number given to activity-grid voxels outside the CT's field of view that hold (almost) no activity."""
MAX_ACTIVITY_OUTSIDE_CT_PERCENT = 0.5
"""Largest share of the activity (%) allowed outside the CT's field of view (SPECT noise in the air around a
smaller CT field); more is refused, since the dose there would be computed for air."""
ACTIVITY_OUTSIDE_BODY_WARNING_PERCENT = 1.0
"""Share of the activity (%) outside the body above which the output carries a warning."""
BODY_MASK_DESCRIPTION = (
    "dose rate set to 0 outside the body: the largest connected region above -500 HU of the CT, holes of every "
    "axial slice filled (DosimetryCore.ct.body_mask)"
)
_OUTSIDE_CT = -1.0e6


@dataclass(frozen=True)
class DoseRateMap:
    """A dose-rate image and how it was made.

    Attributes:
        image: absorbed dose rate in Gy/h, float32, on the activity's grid.
        relative_uncertainty: Monte Carlo relative standard error per voxel (fraction), else None.
        provenance: JSON-serialisable record (also stored in the image metadata under ``deepdosimetry.provenance``).
    """

    image: sitk.Image
    relative_uncertainty: sitk.Image | None
    provenance: dict[str, Any]


def check_dose_inputs(activity: sitk.Image, ct: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """The activity (Bq/mL) and CT (HU) arrays, float32, after checking geometry, units and values."""
    require_image(activity, "activity")
    require_image(ct, "ct")
    require_same_geometry(ct, activity, "ct", "activity")
    for image, name, expected in ((activity, "activity", "Bq/mL"), (ct, "ct", "HU")):
        unit = unit_of(image)
        if unit is not None and unit.lower() != expected.lower():
            raise ValueError(f"{name}: expected values in {expected}, the image says {unit!r}")
    activity_array = array_from_image(activity).astype(np.float32)
    check_finite_nonnegative(activity_array, "activity")
    hu = array_from_image(ct).astype(np.float32)
    check_ct_hu(hu, "ct")
    return activity_array, hu


def ct_on_activity_grid(ct: sitk.Image, activity: sitk.Image, name: str = "ct") -> sitk.Image:
    """The CT (HU) resampled linearly onto the activity grid, float32, air outside the CT's field of view.

    Raises a ValueError naming ``name`` when the CT does not look like HU (:func:`DosimetryCore.ct.check_ct_hu`)
    or when more than :data:`MAX_ACTIVITY_OUTSIDE_CT_PERCENT` % of the activity lies outside
    the CT (its dose would be computed for air). Voxels next to the CT's edge count as outside.
    """
    require_image(activity, "activity")
    require_image(ct, name)
    check_ct_hu(sitk.GetArrayViewFromImage(ct), name)
    resampled = resample_to(sitk.Cast(ct, sitk.sitkFloat32), activity, "linear", default_value=_OUTSIDE_CT)
    hu = array_from_image(resampled)
    outside = hu < -1.0e4
    activity_values = array_from_image(activity).astype(np.float64)
    total = float(activity_values.sum())
    uncovered = 100.0 * float(activity_values[outside].sum()) / total if total > 0 else 0.0
    if uncovered > MAX_ACTIVITY_OUTSIDE_CT_PERCENT:
        raise ValueError(
            f"{name}: does not cover the activity: {uncovered:.1f} % of the activity lies outside the CT's field of "
            f"view (at most {MAX_ACTIVITY_OUTSIDE_CT_PERCENT:g} % allowed); give a CT covering the whole SPECT/PET"
        )
    hu[outside] = AIR_HU
    image = image_from_array(hu.astype(np.float32), activity)
    return set_unit(image, "HU", "CT number")


def compute_dose_rate(
    activity: sitk.Image,
    ct: sitk.Image,
    method: str = "vdk",
    *,
    nuclide: str = "Lu-177",
    kernel: VoxelKernel | None = None,
    include_photons: bool = False,
    density_scaling: str = "electrons",
    photon_histories: int = DEFAULT_PHOTON_HISTORIES,
    batches: int = DEFAULT_BATCHES,
    seed: int = DEFAULT_SEED,
    electron_transport: str = "kernel",
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> DoseRateMap:
    """Absorbed dose-rate map (Gy/h) at the time of the activity map.

    Args:
        activity: activity concentration (Bq/mL), 3D.
        ct: CT (HU) on the same grid (size, spacing, origin, direction).
        method: ``"vdk"`` (kernel convolution + density scaling, seed 002), ``"led"`` (local energy
            deposition) or ``"mc"`` (Monte Carlo).
        nuclide: nuclide name.
        kernel: VDK kernel; None takes it from the kernel cache (generating it for a new voxel size).
        include_photons: LED only: deposit photon energy too.
        density_scaling: VDK only: ``"electrons"`` (the beta kernel's dose scaled by 1.04 g/cm^3 over the
            local density, the photon dose unscaled; default) or ``"total"`` (the whole kernel scaled, as Li
            et al.); see :mod:`DosimetryCore.dose.vdk`.
        photon_histories, batches, seed, electron_transport: Monte Carlo settings.
        device: torch device (None: cuda when available).
        progress: ``progress(fraction, message)`` callback.
    Raises:
        ValueError: unknown method, mismatched geometry, wrong units, negative or NaN activity.
    """
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    if density_scaling not in DENSITY_SCALINGS:
        raise ValueError(f"density_scaling: {density_scaling!r} is not one of {', '.join(DENSITY_SCALINGS)}")
    activity_array, hu = check_dose_inputs(activity, ct)
    spacing_zyx = tuple(reversed(activity.GetSpacing()))
    density = density_g_per_cm3_from_hu(hu)
    uncertainty = None
    if method == "vdk":
        if kernel is None:
            kernel = voxel_kernel(spacing_zyx, nuclide=nuclide, device=device, progress=sub_progress(progress, 0, 0.9))
        dose = vdk_dose_rate(
            activity_array, density, kernel, spacing_zyx, density_scaling=density_scaling, device=device,
            check_values=False,
        )  # fmt: skip
        provenance = {
            "method": "vdk",
            "density_scaling": _SCALING_DESCRIPTIONS[density_scaling],
            "kernel": kernel.provenance,
        }
    elif method == "led":
        dose = led_dose_rate(
            activity_array, density, nuclide=nuclide, include_photons=include_photons, device=device, check_values=False
        )
        provenance = {
            "method": "led",
            "nuclide": nuclide,
            "include_photons": include_photons,
            "energy_MeV_per_decay": local_deposition_MeV_per_decay(nuclide, include_photons),
        }
    else:
        result = simulate_dose_rate(
            activity_array,
            medium_from_hu(hu, spacing_zyx, device),
            nuclide=nuclide,
            photon_histories=photon_histories,
            batches=batches,
            seed=seed,
            electron_transport=electron_transport,
            device=device,
            progress=progress,
        )
        dose, provenance = result.dose_rate_Gy_per_h, result.provenance()
        uncertainty = _image(result.relative_uncertainty, activity, "1", "relative standard error of dose rate")
        stamp(uncertainty, provenance)
    body = body_mask(hu)
    dose = dose * torch.as_tensor(body, device=dose.device)
    provenance = {**provenance, **_body_record(activity_array, body)}
    notes = activity_notes(activity, "activity")
    if notes:
        provenance["warnings"] = [*notes, *provenance.get("warnings", [])]
    image = carry_acquisition_time(activity, _image(dose, activity, DOSE_RATE_UNIT, "absorbed dose rate"))
    stamp(image, provenance)
    if progress:
        progress(1.0, "dose rate done")
    return DoseRateMap(image, uncertainty, provenance)


_SCALING_DESCRIPTIONS = {
    "electrons": "electrons: beta-kernel dose x 1.04 g/cm^3 / CT density, photon-kernel dose unscaled",
    "total": "total: whole-kernel dose x 1.04 g/cm^3 / CT density (Li et al.)",
}


def _body_record(activity: np.ndarray, body: np.ndarray) -> dict[str, Any]:
    """Provenance entries on the body mask: what it is, and the share of the activity outside it."""
    total = float(activity.sum(dtype=np.float64))
    outside = 100.0 * float(activity[~body].sum(dtype=np.float64)) / total if total > 0 else 0.0
    record: dict[str, Any] = {"outside_body": BODY_MASK_DESCRIPTION, "activity_outside_body_percent": outside}
    if outside > ACTIVITY_OUTSIDE_BODY_WARNING_PERCENT:
        record["warnings"] = [
            f"{outside:.1f} % of the activity lies outside the body outline of the CT (misregistration, or a CT "
            "of another patient or time?); its dose is not reported"
        ]
    return record


def _image(values: torch.Tensor, reference: sitk.Image, unit: str, quantity: str) -> sitk.Image:
    image = image_from_array(values.detach().cpu().numpy().astype(np.float32), reference)
    return set_unit(image, unit, quantity)


def segment_table(
    dose_rate: sitk.Image,
    labelmap: sitk.Image,
    names: Mapping[int, str] | None = None,
    dose_volume_percents: Sequence[float] = DEFAULT_DOSE_VOLUME_PERCENTS,
    ct: sitk.Image | None = None,
) -> list[dict[str, Any]]:
    """Per-segment dose-rate statistics (Gy/h): mean, std, min, max and D_x% (the minimum dose rate in the
    hottest x % of the segment), via :func:`DosimetryCore.evaluation.segments.segment_statistics`; one dict per segment
    with keys segment, label, voxels, volume_ml, mean, std, min, max, D<x>%.

    Args:
        dose_rate: dose-rate image (Gy/h).
        labelmap: integer labelmap on the same grid.
        names: ``{label: name}``; default :func:`label_names`.
        dose_volume_percents: the x of the D_x% columns.
        ct: CT (HU) on the same grid; adds ``mass_g``, each segment's mass from the CT density (Li et al.'s
            calibration, :func:`DosimetryCore.physics.tissue.density_g_per_cm3_from_hu`).
    """
    require_image(dose_rate, "dose_rate")
    require_image(labelmap, "labelmap")
    require_same_geometry(labelmap, dose_rate, "labelmap", "dose_rate")
    labels = array_from_image(labelmap)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labelmap: expected integer labels, got pixel type {labels.dtype}")
    names = label_names(labelmap) if names is None else dict(names)
    if not names:
        raise ValueError("labelmap: contains no segments (no label > 0)")
    rows = segment_statistics(
        array_from_image(dose_rate),
        labels,
        names,
        voxel_volume_ml(dose_rate),
        dose_volume_percents=dose_volume_percents,
    )
    rows = [{key: value for key, value in row.items() if key != "sum_times_volume"} for row in rows]
    if ct is None:
        return rows
    require_same_geometry(ct, dose_rate, "ct", "dose_rate")
    density = density_g_per_cm3_from_hu(array_from_image(ct).astype(np.float32))
    voxel_ml = voxel_volume_ml(dose_rate)
    for row in rows:
        row["mass_g"] = float(density[labels == row["label"]].sum(dtype=np.float64)) * voxel_ml
    return rows


def write_table_csv(rows: Sequence[Mapping[str, Any]], path: str | Path, unit: str = DOSE_RATE_UNIT) -> Path:
    """Write :func:`segment_table` rows as CSV; value columns carry the unit in their name (``mean_Gy_per_h``)."""
    plain = {"segment", "label", "voxels", "volume_ml", "mass_g"}
    suffix = name_suffix(unit)
    return write_csv([{k if k in plain else f"{k}_{suffix}": v for k, v in row.items()} for row in rows], path)
