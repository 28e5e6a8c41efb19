"""Node-level logic of the DoseRateCNN module: MRML nodes in, nodes out, inputs never changed.

No ``slicer`` import here: nodes are converted through :mod:`DosimetryCore.mrml`.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from DosimetryCore import mrml, tissue
from DosimetryCore.progress import ProgressCallback, no_progress
from DosimetryCore.volume import image_from_array, resample_to, set_unit

AIR_HU = -1000.0
"""CT number given to the density grid outside the CT's field of view."""


def ct_image(ct_node) -> sitk.Image:
    """The CT volume as a float32 image, checked to hold finite CT numbers (HU)."""
    image = mrml.image_from_volume_node(ct_node)
    unit = image.GetMetaData("deepdosimetry.unit") if image.HasMetaDataKey("deepdosimetry.unit") else None
    if unit not in (None, "HU"):
        raise ValueError(f"CT volume {ct_node.GetName()!r}: unit is {unit}, expected HU")
    values = sitk.GetArrayViewFromImage(image)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"CT volume {ct_node.GetName()!r}: contains NaN or infinite values")
    if values.min() < -1100 or values.max() > 30000:
        raise ValueError(
            f"CT volume {ct_node.GetName()!r}: values {values.min():g}..{values.max():g} are not CT numbers in HU"
        )
    return sitk.Cast(image, sitk.sitkFloat32)


def density_image(ct: sitk.Image, reference: sitk.Image | None = None) -> sitk.Image:
    """Mass density (g/cm^3) from a CT (HU), optionally on the grid of ``reference``.

    The CT is resampled linearly onto the reference grid (air outside the CT) before the
    HU -> density calibration of :func:`DosimetryCore.tissue.density_g_per_cm3_from_hu`.
    """
    if reference is not None:
        ct = resample_to(ct, reference, "linear", default_value=AIR_HU)
    density = tissue.density_g_per_cm3_from_hu(sitk.GetArrayFromImage(ct)).astype(np.float32)
    return set_unit(image_from_array(density, ct), "g/cm3", "mass density")


def density_map(ct_node, activity_node=None, density_node=None, progress: ProgressCallback | None = None):
    """Write the CT-derived mass density (g/cm^3) into a volume node and return it.

    On the activity volume's grid when ``activity_node`` is given, else on the CT grid.
    ``density_node`` is filled when given, else a new node is added. Inputs are never modified.
    """
    progress = progress or no_progress
    progress(0.0, "Reading CT")
    ct = ct_image(ct_node)
    reference = mrml.image_from_volume_node(activity_node) if activity_node is not None else None
    progress(0.4, "Converting HU to density")
    density = density_image(ct, reference)
    progress(0.8, "Writing density volume")
    if density_node is None:
        density_node = mrml.add_volume_node(ct_node.GetScene(), density, f"{ct_node.GetName()} density")
    else:
        mrml.update_volume_node_from_image(density_node, density)
    progress(1.0, "Done")
    return density_node
