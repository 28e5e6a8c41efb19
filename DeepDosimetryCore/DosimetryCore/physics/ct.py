"""CT images as the dose and projection code needs them: a check that an array holds CT numbers in HU, and
the body outline.

The check refuses the mistakes that otherwise give plausible but wrong dose rates (a density map, stored
pixel values without the rescale intercept, a CT shifted by +1024, a labelmap) and names the likely one.
What a CT in HU looks like here: air near -1000 HU somewhere in the field (around the body, or in the
lungs), values no lower than the -3024 HU that scanners use as padding outside the reconstruction circle,
and soft tissue near 0 HU (the median of the voxels between -500 and 3000 HU within 250 HU of zero).

The body is the largest connected region above -500 HU with every hole of each axial slice filled
(lungs, airways, bowel gas), so that a dose-rate map can be set to zero in the air around the patient.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

AIR_PRESENT_HU = -900.0
"""Some voxel must lie at or below this CT number: a CT in HU shows air (about -1000 HU)."""
LOWEST_HU = -3024.0
"""Lowest CT number accepted: the padding value some scanners write outside the reconstruction circle."""
HIGHEST_HU = 30000.0
"""Highest CT number accepted (extended-range CTs with metal reach tens of thousands)."""
TISSUE_WINDOW_HU = (-500.0, 3000.0)
"""Voxels in this window are tissue (not air): their median must be within SOFT_TISSUE_TOLERANCE_HU of 0."""
SOFT_TISSUE_TOLERANCE_HU = 250.0
BODY_THRESHOLD_HU = -500.0
"""Voxels above this CT number are tissue for the body outline."""
LABELMAP_MAX_DISTINCT_VALUES = 256
LABELMAP_MAX_LABEL = 1000
"""Whole numbers from 0 up to below this, in few distinct values, are taken for a labelmap."""


def check_ct_hu(hu: np.ndarray, name: str = "CT") -> None:
    """Raise a ValueError naming the likely mistake when ``hu`` does not look like CT numbers in HU.

    Args:
        hu: CT values, any shape (normally (z, y, x)).
        name: how the input is called in the message (e.g. the file or node name).
    """
    values = np.asarray(hu)
    if values.size == 0:
        raise ValueError(f"{name}: the CT is empty")
    values = values.astype(np.float32, copy=False)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    span = f"values {low:g} to {high:g}"
    distinct = len(np.unique(values)) if low >= 0 and high < LABELMAP_MAX_LABEL else None
    if distinct is not None and distinct <= LABELMAP_MAX_DISTINCT_VALUES and np.all(values == np.round(values)):
        raise ValueError(
            f"{name}: {span} in {distinct} distinct whole numbers look like a labelmap (segmentation), not a CT in HU"
        )
    if low >= 0 and high <= 5:
        raise ValueError(f"{name}: {span} look like a density map (g/cm^3), not a CT in HU; give the CT itself")
    if low > AIR_PRESENT_HU:
        tissue = float(np.median(values[values > low + 500])) if np.any(values > low + 500) else low
        likely = (
            "CT numbers shifted by +1024 (stored pixel values without the DICOM rescale intercept)"
            if low >= -50 and 800 <= tissue <= 1300
            else "values that are not HU (raw scanner values, or a CT cropped inside the body)"
        )
        raise ValueError(
            f"{name}: no air in the field ({span}; a CT in HU has air near -1000 HU around the body or in the "
            f"lungs); these look like {likely}"
        )
    if low < LOWEST_HU or high > HIGHEST_HU:
        raise ValueError(f"{name}: {span} lie outside the CT range {LOWEST_HU:g} to {HIGHEST_HU:g} HU")
    tissue_voxels = values[(values > TISSUE_WINDOW_HU[0]) & (values < TISSUE_WINDOW_HU[1])]
    if tissue_voxels.size == 0:
        raise ValueError(f"{name}: no voxel between {TISSUE_WINDOW_HU[0]:g} and {TISSUE_WINDOW_HU[1]:g} HU: no body")
    median = float(np.median(tissue_voxels))
    if abs(median) > SOFT_TISSUE_TOLERANCE_HU:
        raise ValueError(
            f"{name}: soft tissue is not near 0 HU (median of the non-air voxels {median:.0f} HU); the values "
            "are probably scaled or offset, not HU"
        )


def body_mask(hu: np.ndarray) -> np.ndarray:
    """Boolean mask (same shape as ``hu``, (z, y, x)) of the patient's body: the largest connected region
    above :data:`BODY_THRESHOLD_HU`, with the holes of every axial (y, x) slice filled."""
    tissue = np.asarray(hu) > BODY_THRESHOLD_HU
    labels, count = ndimage.label(tissue)
    if count == 0:
        return tissue
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = labels == int(np.argmax(sizes))
    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    padded = np.pad(body, ((1, 1), (0, 0), (0, 0)))
    return ndimage.binary_fill_holes(padded, structure=in_plane)[1:-1]
