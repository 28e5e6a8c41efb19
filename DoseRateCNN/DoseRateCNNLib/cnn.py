"""The CNN dose rate of any activity image: resample onto the network grid, VDK + residual CNN, resample back.

Steps (Li et al.'s method on the grid the model was trained on, its card's ``training_domain``):

1. the activity (Bq/mL) is resampled linearly onto an isotropic grid of the model's voxel size covering the
   same field, its total activity kept; the CT (HU) is resampled onto that grid;
2. the VDK dose rate of that activity with Li et al.'s whole-kernel density scaling, the density from the CT;
3. the network's output in its units (:mod:`DoseRateCNNLib.training_data`), times the total activity, clamped
   at zero and zero outside the body;
4. the dose rate (an intensive quantity, Gy/h) resampled linearly back onto the activity grid and set to zero
   outside the body outline of the CT on that grid.

The output's provenance names the model (name, sha256), the kernel, the grids, and says loudly when the input is
outside the model's training domain (voxel size far off the training grid; total counts of the SPECT, when given,
outside the trained count levels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from DosimetryCore import dose
from DosimetryCore.core.acquisition_time import carry_acquisition_time
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.provenance import stamp
from DosimetryCore.core.units import DOSE_RATE_UNIT
from DosimetryCore.core.validation import activity_notes, check_positive
from DosimetryCore.core.volume import (
    array_from_image,
    image_from_array,
    resample_to,
    resample_to_spacing,
    set_unit,
    with_total_of,
)
from DosimetryCore.dose.images import AIR_HU, BODY_MASK_DESCRIPTION
from DosimetryCore.learning import models
from DosimetryCore.physics.ct import body_mask
from DosimetryCore.physics.tissue import density_g_per_cm3_from_hu

from .inference import predict_volume
from .training_data import ACTIVITY_SCALE, DOSE_RATE_SCALE, PackedDoseNet, total_activity_MBq

DEFAULT_MODEL = "dose-cnn"
"""The shipped model (``Resources/Models/dose-cnn``)."""
GRID_RATIO_LIMIT = 2.0
"""An input voxel more than this many times coarser than the model's grid is outside its training domain."""


def load_dose_model(
    name: str = DEFAULT_MODEL, device: str | None = None, folder: str | Path | None = None
) -> tuple[PackedDoseNet, dict[str, Any]]:
    """The installed model ``name`` (weights checked against the card's sha256) and its card."""
    model, card = models.load_model(name, PackedDoseNet.from_config, device, folder)
    if "training_domain" not in card:
        raise ValueError(f"model {name!r}: its card has no training_domain; it is not a dose-rate CNN")
    return model, card


def domain_warnings(activity: sitk.Image, card: dict[str, Any], counts: float | None = None) -> list[str]:
    """Why ``activity`` lies outside the training domain of the model of ``card`` (empty when it does not):
    its voxel size, and, when the SPECT's total ``counts`` are given, a count level outside the trained ones
    (the network learnt the noise of those levels, not of fewer counts)."""
    spacing = float(card["training_domain"]["dose_spacing_mm"])
    coarsest = max(activity.GetSpacing())
    notes = []
    if coarsest > GRID_RATIO_LIMIT * spacing:
        notes.append(
            f"outside the model's training domain: voxels of up to {coarsest:.3g} mm, more than {GRID_RATIO_LIMIT:g} x "
            f"the {spacing:g} mm the model {card['name']} was trained on; the residual correction was learnt for "
            "other partial-volume effects"
        )
    levels = card["training_domain"].get("count_levels")
    if counts is not None and levels and not min(levels) <= counts <= max(levels):
        notes.append(
            f"outside the model's training domain: a SPECT of {counts:.3g} counts, while the model {card['name']} was "
            f"trained on {min(levels):.3g} to {max(levels):.3g} counts; its correction is unproven at this noise level"
        )
    return notes


def _network_grid_activity(activity: sitk.Image, spacing_mm: float) -> sitk.Image:
    """The activity resampled onto isotropic ``spacing_mm`` voxels over the same field, total activity kept."""
    moved = with_total_of(resample_to_spacing(activity, (spacing_mm,) * 3, "linear"), activity)
    return set_unit(sitk.Cast(moved, sitk.sitkFloat32), "Bq/mL", "activity concentration")


def network_dose_rate(
    model: PackedDoseNet,
    activity: np.ndarray,
    hu: np.ndarray,
    vdk: np.ndarray,
    voxel_ml: float,
    device: str | None = None,
) -> np.ndarray:
    """The CNN dose rate (Gy/h, (z, y, x)) on the model's own grid: network units in and out, clamped at zero,
    zero outside the body outline of ``hu``.

    Args:
        activity: SPECT activity concentration (Bq/mL); hu: CT (HU); vdk: VDK dose rate (Gy/h, whole-kernel
            density scaling); all (z, y, x) on a grid of the model's voxel size, ``voxel_ml`` mL each.
    """
    total_MBq = total_activity_MBq(activity, voxel_ml)
    torch_device = resolve_device(device)
    inputs = [
        torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(torch_device)
        for array in (
            np.asarray(activity) * (ACTIVITY_SCALE / total_MBq),
            density_g_per_cm3_from_hu(np.asarray(hu)),
            np.asarray(vdk) * (DOSE_RATE_SCALE / total_MBq),
        )
    ]
    predicted = predict_volume(model.to(torch_device).net, *inputs).cpu().numpy()
    return (np.clip(predicted, 0.0, None) * (total_MBq / DOSE_RATE_SCALE) * body_mask(hu)).astype(np.float32)


def cnn_dose_rate(
    activity: sitk.Image,
    ct: sitk.Image,
    model: PackedDoseNet,
    card: dict[str, Any],
    *,
    counts: float | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> dose.DoseRateMap:
    """Dose rate (Gy/h) of ``activity`` (Bq/mL) with the CT ``ct`` (HU, on the activity's grid: see
    :func:`DosimetryCore.dose.ct_on_activity_grid`) by the residual CNN ``model`` (card ``card``). ``counts``:
    the SPECT's total counts, when known, checked against the trained count levels."""
    if counts is not None:
        counts = check_positive(counts, "counts")
    report = progress or no_progress
    activity_values, hu = dose.check_dose_inputs(activity, ct)
    if not activity_values.sum() > 0:
        raise ValueError("activity: holds no activity; there is no dose rate to compute")
    spacing = float(card["training_domain"]["dose_spacing_mm"])
    report(0.0, f"Resampling onto the model's {spacing:g} mm grid")
    activity_net = _network_grid_activity(activity, spacing)
    ct_net = set_unit(resample_to(ct, activity_net, "linear", default_value=AIR_HU), "HU", "CT number")
    vdk = dose.compute_dose_rate(
        activity_net, ct_net, "vdk", density_scaling="total", device=device, progress=sub_progress(report, 0.05, 0.4)
    )
    report(0.45, "CNN correction")
    hu_net = array_from_image(ct_net)
    dose_net = network_dose_rate(
        model, array_from_image(activity_net), hu_net, array_from_image(vdk.image), spacing**3 / 1000.0, device
    )
    total_MBq = total_activity_MBq(array_from_image(activity_net), spacing**3 / 1000.0)
    report(0.9, "Resampling back onto the activity grid")
    back = resample_to(image_from_array(dose_net.astype(np.float32), activity_net), activity, "linear")
    dose_values = np.clip(array_from_image(back), 0.0, None) * body_mask(hu)
    image = set_unit(image_from_array(dose_values.astype(np.float32), activity), DOSE_RATE_UNIT, "absorbed dose rate")
    carry_acquisition_time(activity, image)
    warnings = [*activity_notes(activity, "activity"), *domain_warnings(activity, card, counts)]
    provenance = {
        "method": "cnn",
        "description": "residual CNN on the VDK dose rate (Li et al., Med Phys 2022)",
        "model": models.model_provenance(card),
        "model_name": card["name"],
        "model_sha256": card["weights_sha256"],
        "network_grid_mm": spacing,
        "network_grid_size_xyz": list(activity_net.GetSize()),
        "total_activity_MBq": total_MBq,
        "training_domain": card["training_domain"],
        "count_level": f"{counts:.4g} total counts (given)"
        if counts is not None
        else "not given: the output is in the model's domain for SPECT of the training_domain's total counts, "
        "reconstructed as in its training data",
        "vdk": vdk.provenance,
        "outside_body": BODY_MASK_DESCRIPTION,
        "warnings": warnings,
    }
    stamp(image, provenance)
    report(1.0, "dose rate done")
    return dose.DoseRateMap(image, None, provenance)
