"""Lesions at the lung interface: :func:`add_lung_lesion` puts a soft-tissue lesion at the lung's edge.

Lesions next to lung are where voxel dose kernels fail most (a soft-tissue kernel spread into tissue of a
fifth of the density; Li et al. report them as a region of their own). :func:`DosimetryCore.phantoms.make_torso`
places lesions in liver, bone and lymph nodes; this adds a peripheral lung metastasis (a nodule touching the
chest wall, diaphragm or mediastinum) to a finished phantom, as a separate step so phantoms made without it
stay what they were.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
from scipy import ndimage

from DosimetryCore.core.constants import BQ_PER_MBQ
from DosimetryCore.core.validation import check_positive, check_range
from DosimetryCore.core.volume import array_from_image, image_from_array, voxel_volume_ml
from DosimetryCore.phantoms.tables import HU, LABELS, Lesion, Phantom
from DosimetryCore.phantoms.torso import _phantom

EDGE_MM = 10.0
"""The lesion's centre lies in lung within this distance (mm) of non-lung tissue (or one voxel, if larger)."""


def add_lung_lesion(
    case: Phantom,
    rng: np.random.Generator,
    diameter_mm: tuple[float, float] = (10.0, 50.0),
    relative_uptake: tuple[float, float] = (10.0, 60.0),
) -> Phantom:
    """``case`` with one more lesion, in lung at its edge; the total activity is kept.

    The centre is a random lung voxel within :data:`EDGE_MM` of non-lung tissue; the lesion is the sphere of
    diameter U(``diameter_mm``) clipped to the lung, CT number ``HU["lesion_lung"]``, label ``lesion_lung``,
    concentration log-U(``relative_uptake``) times the mean concentration of the body. All activity is then
    scaled so the image holds the activity it held before (the phantom's total at imaging time).
    """
    low, high = check_range(diameter_mm, "diameter_mm")
    uptake_low, uptake_high = check_range(relative_uptake, "relative_uptake")
    check_positive(low, "diameter_mm")
    labels = array_from_image(case.labels).copy()
    lungs = np.isin(labels, [LABELS["lung_left"], LABELS["lung_right"]])
    if not lungs.any():
        raise ValueError("case: has no lung to place a lung lesion in")
    spacing = np.array(case.labels.GetSpacing()[::-1])
    reach = max(EDGE_MM, float(spacing.max()))  # on coarse grids: the lung's outermost voxels
    edge = lungs & (ndimage.distance_transform_edt(lungs, sampling=spacing) <= reach)
    candidates = np.argwhere(edge)
    centre = candidates[rng.integers(len(candidates))]
    diameter = float(rng.uniform(low, high))
    grid = np.ogrid[tuple(slice(0, n) for n in labels.shape)]
    distance2 = sum(((axis - c) * d) ** 2 for axis, c, d in zip(grid, centre, spacing, strict=True))
    mask = (distance2 <= (diameter / 2.0) ** 2) & lungs
    uptake = float(np.exp(rng.uniform(np.log(uptake_low), np.log(uptake_high))))

    activity = array_from_image(case.activity).astype(np.float64)
    voxel_ml = voxel_volume_ml(case.activity)
    total_Bq = float(activity.sum()) * voxel_ml
    body_mean = total_Bq / (float(np.count_nonzero(labels)) * voxel_ml)
    activity[mask] = uptake * body_mean
    activity *= total_Bq / (float(activity.sum()) * voxel_ml)
    ct = array_from_image(case.ct).copy()
    ct[mask] = HU["lesion_lung"]
    labels[mask] = LABELS["lesion_lung"]

    origin = np.array(case.ct.GetOrigin())
    centre_mm = tuple(float(v) for v in origin + centre[::-1] * spacing[::-1])
    lesion = Lesion("lung", centre_mm, diameter, uptake)
    provenance = {
        **case.provenance,
        "lung_lesion": asdict(lesion) | {"edge_mm": EDGE_MM, "total_activity_MBq": total_Bq / BQ_PER_MBQ},
    }
    images = [image_from_array(a, reference=case.ct) for a in (ct, labels, activity.astype(np.float32))]
    return _phantom(*images, (*case.lesions, lesion), provenance)
