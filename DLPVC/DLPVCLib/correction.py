"""Partial-volume correction of quantitative 177Lu SPECT: IY-PVC and DL-PVC (seed 003, Leube et al. 2024).

Two methods, both taking and returning SimpleITK images of activity concentration in Bq/mL:

- :func:`correct_iy`: iterative Yang PVC (:func:`DLPVCLib.iterative_yang.iterative_yang`, PETPVC's
  ``--pvc IY``), which needs the regions (a labelmap on the SPECT grid) and the PSF FWHM.
- :func:`correct_dl`: the DL-PVC network of a trained model (:func:`load_dlpvc_model`), applied to
  the full field of view on the model's training grid, without a segmentation.

DL-PVC on a SPECT of any geometry (spacing, size, direction) goes through the network grid:

1. The network grid is the model's training grid (size and spacing from its card, e.g. 128^3
   voxels of 4.8 mm), axis-aligned in LPS as the simulated training data are, and centred on the
   centre of the SPECT's field of view. Where more than :data:`MAX_ACTIVITY_OUTSIDE_GRID` of the
   SPECT's activity lies outside it, the SPECT is refused (crop it first).
2. The activity concentration is resampled onto it by linear interpolation (zero outside the
   SPECT) and scaled so that its total activity (sum times voxel volume, Bq) equals the SPECT's.
3. The network corrects it, normalised by its maximum and keeping its total activity
   (:class:`DLPVCLib.networks.DLPVCModel`).
4. On a SPECT whose grid is the network grid, the result is the corrected image. On any other grid the
   correction is carried back as a gain: the corrected over the network's input, voxel by voxel on the
   network grid (the input floored at :data:`GAIN_FLOOR` of its maximum), resampled onto the SPECT's grid by
   linear interpolation and multiplied into the SPECT. The product is scaled so that its total activity equals
   the SPECT's, to float precision.

Why a gain, not the corrected image itself: resampling a 4.8 mm SPECT onto a 9.6 mm network grid and the
correction back blurs it twice more, and the network's correction is partly lost on the way. Measured with
``dlpvc-r2unet`` (64^3 x 9.6 mm) on 10 patient-like torsos simulated at 128^3 x 4.8 mm (``simulate-pvc --n 12
--seed 3400 --size 128 --spacing-mm 4.8 --kind torso``, test split; mirror ensemble), inside the body, against
no PVC: the corrected image resampled back gave SSIM 0.963 / NRMSE 1.92 % / VAA 29.3 % and organs' and lesions'
mean |RC - 1| 0.144 and 0.444; the gain gives 0.963 / 1.96 % / 25.8 % and 0.100 and 0.352 (no PVC: 0.949 / 2.21
% / 18.7 %, 0.177 and 0.462). The gain keeps the SPECT's own detail and noise, and restores more of each organ's
and lesion's activity, which is what dosimetry reads.

Linear interpolation samples the concentration at the new voxel centres; it does not average
over voxels, so a grid much coarser than the SPECT's aliases fine detail (a grid of twice the spacing over the
same field of view, as 4.8 to 9.6 mm, averages each 2 x 2 x 2 block exactly). The rescalings keep the total
activity: the one quantity PVC must not change (seed 003).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from DLPVCLib.constants import (
    DEFAULT_MODEL,
    MODEL_NAME_PREFIX,
)
from DLPVCLib.domain import domain_warnings
from DLPVCLib.iterative_yang import NEGATIVE_TOLERANCE, iterative_yang
from DLPVCLib.networks import DLPVCModel
from DLPVCLib.networks import mirror_ensemble as run_mirror_ensemble
from DosimetryCore.core import provenance
from DosimetryCore.core.constants import BQ_PER_MBQ
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.metadata import QUANTITY_KEY
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.resources import models_dir
from DosimetryCore.core.units import ACTIVITY_UNIT
from DosimetryCore.core.validation import check_activity_image
from DosimetryCore.core.volume import (
    image_from_array,
    require_image,
    require_same_geometry,
    resample_to,
    same_geometry,
    set_unit,
    voxel_volume_ml,
)
from DosimetryCore.evaluation import segments
from DosimetryCore.learning import models

ACTIVITY_QUANTITY = "activity concentration"

GRID_CARD_FIELD = "grid"
"""Model-card field holding the network (training) grid: ``{"size": [x, y, z], "spacing_mm": [x, y, z]}``."""

INFERENCE = {
    True: "mean of the network over the 8 mirror images of its input (test-time augmentation)",
    False: "one pass of the network",
}
"""How :func:`correct_dl` ran the network, by its ``mirror_ensemble`` argument (recorded in the provenance)."""

GAIN_FLOOR = 1e-3
"""Network-grid voxels below this fraction of the input's maximum count as holding that much in the gain."""

MAX_ACTIVITY_OUTSIDE_GRID = 0.01
"""Largest fraction of a SPECT's activity allowed outside the DL-PVC network grid (the rest is refused)."""

TABLE_UNITS = {
    "volume_ml": "mL",
    "mean_before_Bq_per_mL": "Bq/mL",
    "mean_after_Bq_per_mL": "Bq/mL",
    "activity_before_MBq": "MBq",
    "activity_after_MBq": "MBq",
}
"""Columns of :func:`segment_rows` (after ``segment``) and their units."""


@dataclass(frozen=True)
class NetworkGrid:
    """The grid a DL-PVC network works on: ``size`` (voxels) and ``spacing_mm`` along x, y, z."""

    size: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.size) != 3 or not all(isinstance(n, numbers.Integral) and n > 0 for n in self.size):
            raise ValueError(f"grid: size must be 3 positive integers (x, y, z), got {self.size}")
        if len(self.spacing_mm) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing_mm):
            raise ValueError(f"grid: spacing_mm must be 3 positive lengths in mm (x, y, z), got {self.spacing_mm}")

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> NetworkGrid:
        """The grid recorded under :data:`GRID_CARD_FIELD` in a model card."""
        entry = card.get(GRID_CARD_FIELD)
        if not isinstance(entry, Mapping) or "size" not in entry or "spacing_mm" not in entry:
            raise ValueError(
                f"model {card.get('name')!r}: its card has no {GRID_CARD_FIELD!r} "
                '({"size": [x, y, z], "spacing_mm": [x, y, z]}, the training grid); pass grid='
            )
        return cls(tuple(int(n) for n in entry["size"]), tuple(float(s) for s in entry["spacing_mm"]))

    def reference(self, centre_mm: Sequence[float]) -> sitk.Image:
        """An empty float32 image on this grid, identity direction, its centre at ``centre_mm`` (LPS)."""
        image = sitk.Image([int(n) for n in self.size], sitk.sitkFloat32)
        image.SetSpacing(self.spacing_mm)
        half_extent = (np.array(self.size) - 1) * np.array(self.spacing_mm) / 2.0
        image.SetOrigin((np.asarray(centre_mm, dtype=float) - half_extent).tolist())
        return image


@dataclass
class TrainedModel:
    """A loaded DL-PVC network with its model card (see :mod:`DosimetryCore.learning.models`)."""

    network: DLPVCModel
    card: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.card["name"])

    @property
    def grid(self) -> NetworkGrid:
        """The training grid from the card (:data:`GRID_CARD_FIELD`)."""
        return NetworkGrid.from_card(self.card)


def total_activity_Bq(image: sitk.Image) -> float:
    """Total activity (Bq) of an activity-concentration image (Bq/mL): voxel sum times voxel volume."""
    return float(sitk.GetArrayViewFromImage(image).sum(dtype=np.float64)) * voxel_volume_ml(image)


def correct_iy(
    image: sitk.Image,
    labelmap: sitk.Image,
    names: Mapping[int, str],
    fwhm_mm: Sequence[float],
    iterations: int = 10,
    progress: ProgressCallback | None = None,
) -> sitk.Image:
    """Iterative Yang PVC of a SPECT (Bq/mL) in the regions of ``labelmap`` (PETPVC ``--pvc IY``).

    Args:
        image: 3D SPECT activity concentration in Bq/mL (finite, non-negative, not zero everywhere).
        labelmap: integer labelmap on the grid of ``image``; each label in ``names`` is a region, all
            other voxels form the background region.
        names: ``{label: segment name}``, at least one segment, each with voxels.
        fwhm_mm: PSF FWHM (mm) along the image x, y, z axes (e.g. ``(DEFAULT_FWHM_MM,) * 3``).
        iterations: number of iterations, >= 1 (seed 003 used 10).
        progress: ``progress(fraction, message)``, once per iteration.

    Returns:
        A new float32 image in Bq/mL on the grid of ``image`` with the correction's provenance
        (JSON) under :data:`PROVENANCE_KEY`. Iterative Yang does not keep the total activity.

    Raises:
        ValueError: invalid image, labelmap of another geometry or non-integer, empty ``names`` or
            segment, FWHM <= 0, iterations < 1.
    """
    check_activity_image(image, "image", negative_tolerance=NEGATIVE_TOLERANCE)
    require_image(labelmap, "labelmap", dimension=3)
    require_same_geometry(labelmap, image, "labelmap", "image")
    if not names:
        raise ValueError("names: IY-PVC needs at least one segment ({label: name})")
    return iterative_yang(image, labelmap, fwhm_mm, iterations, names, progress)


def correct_dl(
    image: sitk.Image,
    model: TrainedModel,
    grid: NetworkGrid | None = None,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    mirror_ensemble: bool = True,
) -> sitk.Image:
    """DL-PVC of a SPECT (Bq/mL) of any geometry; the output keeps the SPECT's grid and total activity.

    The steps (resampling to the network grid, the correction's gain back, each keeping the total activity) are in
    the module docstring.

    Args:
        image: 3D SPECT activity concentration in Bq/mL (finite, non-negative, not zero everywhere),
            any size, spacing and direction.
        model: from :func:`load_dlpvc_model`.
        grid: the network grid (default: the model's training grid from its card); every size a
            multiple of the network's ``required_multiple``.
        device: torch device to run on (default: where the model is); the model is moved there.
        progress: ``progress(fraction, message)`` callback.
        mirror_ensemble: the network's output is the mean over the 8 mirror images of its input
            (:func:`DLPVCLib.networks.mirror_ensemble`, how the card's metrics are measured); ``False``:
            one pass, 8 times faster.

    Returns:
        A new float32 image in Bq/mL on the grid of ``image``, total activity equal to the input's,
        with provenance (JSON: method, model name, sha256 and provenance line, grid, device, inference, and the
        ``warnings`` of :func:`DLPVCLib.domain.domain_warnings` when the SPECT is unlike the training data)
        under :data:`PROVENANCE_KEY`.

    Raises:
        ValueError: invalid image; more than :data:`MAX_ACTIVITY_OUTSIDE_GRID` of the activity
            outside the network grid; a grid the network cannot take.
    """
    report = progress or no_progress
    values = check_activity_image(image, "image")
    grid = model.grid if grid is None else grid
    _check_grid_fits(grid, model.network)
    device = next(model.network.parameters()).device if device is None else resolve_device(device)
    source = sitk.Cast(image, sitk.sitkFloat32)
    total_Bq = float(values.sum()) * voxel_volume_ml(image)
    reference = grid.reference(_field_of_view_centre(image))
    _check_inside(values, reference, image, grid)

    report(0.0, "DL-PVC: resampling onto the network grid")
    network_input = _with_total(resample_to(source, reference, "linear"), total_Bq, "the network grid")
    report(0.2, f"DL-PVC: running the network on {device}")
    passes = sub_progress(report, 0.2, 0.8)
    corrected = _run_network(model.network.to(device), network_input, device, mirror_ensemble, passes)
    report(0.8, "DL-PVC: resampling back onto the SPECT grid")
    if same_geometry(source, reference):
        output = _with_total(corrected, total_Bq, "the SPECT grid")
    else:
        gain = resample_to(correction_gain(network_input, corrected), source, "linear")
        output = _with_total(source * gain, total_Bq, "the SPECT grid")
    set_unit(output, ACTIVITY_UNIT, image.GetMetaData(QUANTITY_KEY) if image.HasMetaDataKey(QUANTITY_KEY) else None)
    warnings = domain_warnings(image, model.card)
    run = {"inference": INFERENCE[mirror_ensemble], "warnings": warnings}
    provenance.stamp(output, _dl_provenance(model, grid, reference, device) | run)
    report(1.0, "DL-PVC done")
    return output


def load_dlpvc_model(
    name: str = DEFAULT_MODEL, folder: str | Path | None = None, device: str | torch.device | None = None
) -> TrainedModel:
    """Load DL-PVC model ``name`` (hash-checked) from ``folder`` (default ``Resources/Models``).

    Raises:
        ValueError: no such model (the message names the folder searched and how to train one),
            weights whose sha256 differs from the card's, a card without a network grid, or an
            architecture that is not a DL-PVC network.
    """
    root = models_dir() if folder is None else Path(folder)
    if name not in models.list_models(root):
        raise ValueError(f"model: no model {name} in {root}; train one with `deepdosimetry train dlpvc`")
    network, card = models.load_model(name, _dlpvc_network(name), device=device, folder=root)
    trained = TrainedModel(network, card)
    _check_grid_fits(trained.grid, network)
    return trained


def installed_models(folder: str | Path | None = None) -> list[str]:
    """Names of the DL-PVC models (``dlpvc*``) under ``folder`` (default ``Resources/Models``), sorted."""
    return [name for name in models.list_models(folder) if name.startswith(MODEL_NAME_PREFIX)]


def segment_rows(
    before: sitk.Image, after: sitk.Image, labelmap: sitk.Image, names: Mapping[int, str]
) -> list[dict[str, object]]:
    """Per-segment comparison of a SPECT before and after PVC, one row per segment (label order).

    Columns: ``segment``, then :data:`TABLE_UNITS`: volume (mL), mean activity concentration before
    and after (Bq/mL), activity before and after (MBq). All three images share one grid.
    """
    require_same_geometry(after, before, "corrected image", "SPECT")
    require_same_geometry(labelmap, before, "labelmap", "SPECT")
    labels = sitk.GetArrayViewFromImage(labelmap)
    voxel_ml = voxel_volume_ml(before)
    statistics = [
        segments.segment_statistics(sitk.GetArrayViewFromImage(image), labels, names, voxel_ml)
        for image in (before, after)
    ]
    return [
        {
            "segment": first["segment"],
            "volume_ml": first["volume_ml"],
            "mean_before_Bq_per_mL": first["mean"],
            "mean_after_Bq_per_mL": second["mean"],
            "activity_before_MBq": first["sum_times_volume"] / BQ_PER_MBQ,
            "activity_after_MBq": second["sum_times_volume"] / BQ_PER_MBQ,
        }
        for first, second in zip(*statistics, strict=True)
    ]


def _dlpvc_network(name: str):
    def build(config: dict[str, Any]) -> DLPVCModel:
        try:
            return DLPVCModel.from_config(config)
        except TypeError as error:
            raise ValueError(f"model {name!r}: architecture {config} is not a DL-PVC network ({error})") from error

    return build


def _check_grid_fits(grid: NetworkGrid, network: DLPVCModel) -> None:
    multiple = network.required_multiple
    if any(n % multiple for n in grid.size):
        raise ValueError(f"grid: size {grid.size} must be a multiple of {multiple} (the network's downsampling)")


def _field_of_view_centre(image: sitk.Image) -> tuple[float, float, float]:
    """Physical (LPS, mm) centre of the image's voxel grid."""
    return image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in image.GetSize()])


def _check_inside(values: np.ndarray, reference: sitk.Image, image: sitk.Image, grid: NetworkGrid) -> None:
    """Refuse an image with more than MAX_ACTIVITY_OUTSIDE_GRID of its activity outside ``reference``."""
    cover = sitk.Image(reference.GetSize(), sitk.sitkUInt8) + 1
    cover.CopyInformation(reference)
    inside = sitk.GetArrayFromImage(resample_to(cover, image, "nearest")) > 0
    outside = float(values[~inside].sum() / values.sum())
    if outside > MAX_ACTIVITY_OUTSIDE_GRID:
        extent = " x ".join(f"{n * s:g}" for n, s in zip(grid.size, grid.spacing_mm, strict=True))
        raise ValueError(
            f"image: {100 * outside:.1f} % of its activity lies outside the DL-PVC network's field of view "
            f"({extent} mm: {grid.size} voxels of {grid.spacing_mm} mm, centred on the SPECT); crop the SPECT"
        )


def _with_total(image: sitk.Image, total_Bq: float, where: str) -> sitk.Image:
    """``image`` (Bq/mL) scaled so that its total activity is ``total_Bq``; float32."""
    current = total_activity_Bq(image)
    if current <= 0:
        raise ValueError(
            f"image: no activity left after resampling onto {where}; its active structures are smaller than the "
            "voxel spacing"
        )
    values = sitk.GetArrayFromImage(image).astype(np.float64) * (total_Bq / current)
    return image_from_array(values.astype(np.float32), image, unit=ACTIVITY_UNIT)


def correction_gain(network_input: sitk.Image, corrected: sitk.Image) -> sitk.Image:
    """Voxel-wise gain of the correction on the network grid: ``corrected / max(input, GAIN_FLOOR * max(input))``.

    Both images are activity concentrations (Bq/mL) on one grid; the gain is dimensionless, float32. The floor
    keeps the gain finite in cold voxels, where a SPECT it is multiplied into holds next to no activity anyway.
    """
    values = sitk.GetArrayFromImage(network_input).astype(np.float64)
    floor = GAIN_FLOOR * float(values.max())
    gain = sitk.GetArrayFromImage(corrected).astype(np.float64) / np.maximum(values, floor)
    return image_from_array(gain.astype(np.float32), network_input)


def _run_network(
    network: DLPVCModel, image: sitk.Image, device: torch.device, mirror_ensemble: bool, progress: ProgressCallback
) -> sitk.Image:
    """The network's correction of a float32 image on its grid, as an image on the same grid: the mirror
    ensemble (each of its passes reported to ``progress``) or one pass."""
    with torch.no_grad():
        x = torch.from_numpy(sitk.GetArrayFromImage(image)).to(device)[None, None]
        y = run_mirror_ensemble(network, x, progress) if mirror_ensemble else network(x)
        y = y[0, 0].cpu().numpy()
    return image_from_array(y, image, unit=ACTIVITY_UNIT)


def _dl_provenance(
    model: TrainedModel, grid: NetworkGrid, reference: sitk.Image, device: torch.device
) -> dict[str, Any]:
    return {
        "method": "DL-PVC (Leube et al., J Nucl Med 2024)",
        "model": models.model_provenance(model.card),
        "model_name": model.name,
        "model_sha256": model.card["weights_sha256"],
        "architecture": model.card["architecture"],
        "model_limitations": list(model.card.get("limitations", [])),
        "grid": {
            "size": list(grid.size),
            "spacing_mm": list(grid.spacing_mm),
            "origin_mm": list(reference.GetOrigin()),
            "direction": "identity",
        },
        "resampling": (
            "linear onto the grid; on another grid than the SPECT's, the correction's gain (corrected / input) "
            "resampled linearly back and multiplied into the SPECT; total activity rescaled to the input's at each step"
        ),
        "device": str(device),
    }
