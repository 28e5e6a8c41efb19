"""Per-voxel loss weights under which every region counts equally, measured against the VDK baseline.

The held-out goal (:mod:`DoseRateCNNLib.evaluation`) is a lower error than VDK in every region: healthy liver,
liver, each lesion, spleen, each kidney. Plain mean squared error weighs a voxel's squared error in
(Gy/h)^2, so the regions where VDK errs most in absolute terms drive training: on this project's cases the lungs
(VDK divides the activity spilled into them by their density of 0.3 g/cm3) hold about half of VDK's squared
error and the liver 1-4 %; a network trained so barely corrects the liver.

:func:`region_weight_map` gives each voxel of region R the weight

    w_R = 1 / (n_R * MSE_R)

with n_R the region's voxels and MSE_R the mean squared error of the baseline (VDK of the SPECT) against the
label in R. The loss sum over R of n_R * w_R * (mean squared error in R) is then the sum over regions of
(error / VDK's error)^2: every region starts at 1 and counts the same, whatever its size and dose rate. Floors
keep a region from taking over: n_R >= :data:`MIN_REGION_VOXELS` and MSE_R >= (:data:`MIN_RELATIVE_ERROR` x
the region's mean label, at least the body's)^2. Regions are the label map's organs (each label value, the body
remainder, lungs and bones included) and each lesion (a connected component of the lesion labels), as in the
evaluation. Weights are scaled to a mean of 1 over the body and are zero outside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

MIN_REGION_VOXELS = 8
"""Floor of a region's voxel count in its weight (a lesion of a few voxels would otherwise dominate)."""
MIN_RELATIVE_ERROR = 0.05
"""Floor of the baseline's root-mean-square error in a region, relative to its mean label (where VDK is
already within a few per cent, the label's own Monte Carlo noise is of that order)."""
LESION_PREFIX = "lesion"


def region_ids(labels: np.ndarray, names: dict[str, str]) -> np.ndarray:
    """Region index (int32, (z, y, x)) of every voxel: 0 outside the body, one index per organ label value and
    one per connected lesion (label names starting with ``lesion``)."""
    labels = np.asarray(labels)
    lesion_values = [int(value) for value, name in names.items() if name.startswith(LESION_PREFIX)]
    lesions = np.isin(labels, lesion_values)
    ids = np.where(lesions, 0, labels).astype(np.int32)
    components, _ = ndimage.label(lesions)
    ids[lesions] = components[lesions] + (int(labels.max()) if labels.size else 0)
    return ids


def region_weight_map(
    labels: np.ndarray, names: dict[str, str], label_dose_rate: np.ndarray, baselines: Sequence[np.ndarray]
) -> np.ndarray:
    """Loss weights (float32, (z, y, x)) of one case: w_R = 1 / (n_R * MSE_R) in every region R (see the module
    docstring), scaled to a mean of 1 over the body, zero outside it.

    Args:
        labels: the case's label map (0 outside the body).
        names: label value (as a string) -> name, as the case record holds it.
        label_dose_rate: the Monte Carlo label (Gy/h), same shape.
        baselines: the baseline dose rates (Gy/h, same shape; e.g. VDK of the SPECT at each count level); MSE_R
            is their mean.
    """
    return region_weights_of(region_ids(labels, names), label_dose_rate, baselines)


def region_weights_of(ids: np.ndarray, label_dose_rate: np.ndarray, baselines: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`region_weight_map` of the regions ``ids`` (:func:`region_ids`, 0 outside the body), for a caller
    that keeps the region index too."""
    if not baselines:
        raise ValueError("baselines: expected at least one baseline dose rate")
    body = ids > 0
    if not body.any():
        raise ValueError("labels: no body voxels; a case without a body has nothing to train on")
    flat = ids.ravel()
    dose_rate = np.asarray(label_dose_rate, dtype=np.float64)
    counts = np.bincount(flat, minlength=flat.max() + 1).astype(np.float64)
    means = np.bincount(flat, weights=dose_rate.ravel(), minlength=counts.size) / np.maximum(counts, 1.0)
    squared = sum(
        np.bincount(flat, weights=((np.asarray(b, dtype=np.float64) - dose_rate) ** 2).ravel(), minlength=counts.size)
        for b in baselines
    ) / (len(baselines) * np.maximum(counts, 1.0))
    body_mean = dose_rate[body].mean()
    if not body_mean > 0:
        raise ValueError("label_dose_rate: zero inside the body; the region weights need a positive dose rate")
    floor = (MIN_RELATIVE_ERROR * np.maximum(means, body_mean)) ** 2
    per_region = 1.0 / (np.maximum(counts, MIN_REGION_VOXELS) * np.maximum(squared, floor))
    per_region[0] = 0.0
    weights = per_region[ids]
    return (weights / weights[body].mean()).astype(np.float32)
