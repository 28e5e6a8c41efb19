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

from ..core.progress import ProgressCallback, sub_progress
from ..core.provenance import stamp
from ..core.units import DOSE_RATE_UNIT, name_suffix
from ..core.validation import check_finite, check_finite_nonnegative
from ..core.volume import (
    array_from_image,
    image_from_array,
    require_image,
    require_same_geometry,
    set_unit,
    unit_of,
    voxel_volume_ml,
)
from ..evaluation.segments import segment_statistics
from ..io.labels import label_names
from ..io.tables import write_csv
from ..physics.tissue import density_g_per_cm3_from_hu
from .kernels import VoxelKernel, voxel_kernel
from .mc_dose_rate import simulate_dose_rate
from .montecarlo import DEFAULT_BATCHES, DEFAULT_PHOTON_HISTORIES, DEFAULT_SEED, medium_from_hu
from .vdk import led_dose_rate, local_deposition_MeV_per_decay, vdk_dose_rate

METHODS = ("vdk", "led", "mc")
DEFAULT_DOSE_VOLUME_PERCENTS = (2.0, 50.0, 98.0)


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


def _checked_inputs(activity: sitk.Image, ct: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
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
    check_finite(hu, "ct")
    return activity_array, hu


def compute_dose_rate(
    activity: sitk.Image,
    ct: sitk.Image,
    method: str = "vdk",
    *,
    nuclide: str = "Lu-177",
    kernel: VoxelKernel | None = None,
    include_photons: bool = False,
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
        photon_histories, batches, seed, electron_transport: Monte Carlo settings.
        device: torch device (None: cuda when available).
        progress: ``progress(fraction, message)`` callback.
    Raises:
        ValueError: unknown method, mismatched geometry, wrong units, negative or NaN activity.
    """
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    activity_array, hu = _checked_inputs(activity, ct)
    spacing_zyx = tuple(reversed(activity.GetSpacing()))
    density = density_g_per_cm3_from_hu(hu)
    uncertainty = None
    if method == "vdk":
        if kernel is None:
            kernel = voxel_kernel(spacing_zyx, nuclide=nuclide, device=device, progress=sub_progress(progress, 0, 0.9))
        dose = vdk_dose_rate(activity_array, density, kernel, spacing_zyx, device=device, check_values=False)
        provenance = {
            "method": "vdk",
            "density_scaling": "x 1.04 g/cm^3 / CT density (seed 002)",
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
    image = _image(dose, activity, DOSE_RATE_UNIT, "absorbed dose rate")
    stamp(image, provenance)
    if progress:
        progress(1.0, "dose rate done")
    return DoseRateMap(image, uncertainty, provenance)


def _image(values: torch.Tensor, reference: sitk.Image, unit: str, quantity: str) -> sitk.Image:
    image = image_from_array(values.detach().cpu().numpy().astype(np.float32), reference)
    return set_unit(image, unit, quantity)


def segment_table(
    dose_rate: sitk.Image,
    labelmap: sitk.Image,
    names: Mapping[int, str] | None = None,
    dose_volume_percents: Sequence[float] = DEFAULT_DOSE_VOLUME_PERCENTS,
) -> list[dict[str, Any]]:
    """Per-segment dose-rate statistics (Gy/h): mean, std, min, max and D_x% (the minimum dose rate in the
    hottest x % of the segment), via :func:`DosimetryCore.evaluation.segments.segment_statistics`; one dict per segment
    with keys segment, label, voxels, volume_ml, mean, std, min, max, D<x>%.

    Args:
        dose_rate: dose-rate image (Gy/h).
        labelmap: integer labelmap on the same grid.
        names: ``{label: name}``; default :func:`label_names`.
        dose_volume_percents: the x of the D_x% columns.
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
    return [{key: value for key, value in row.items() if key != "sum_times_volume"} for row in rows]


def write_table_csv(rows: Sequence[Mapping[str, Any]], path: str | Path, unit: str = DOSE_RATE_UNIT) -> Path:
    """Write :func:`segment_table` rows as CSV; value columns carry the unit in their name (``mean_Gy_per_h``)."""
    plain = {"segment", "label", "voxels", "volume_ml"}
    suffix = name_suffix(unit)
    return write_csv([{k if k in plain else f"{k}_{suffix}": v for k, v in row.items()} for row in rows], path)
