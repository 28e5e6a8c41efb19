"""Conjugate-view (geometric-mean) quantification of organ activity from anterior/posterior planar images: what
clinics do with planar 177Lu images, and the baseline every PlanarTo3D result is compared with.

For each organ (MIRD Pamphlet 16, Siegel et al., J Nucl Med 1999;40:37S-61S), per pixel of its region of interest
(ROI: the organ's projection along the antero-posterior axis, widened by ``roi_margin_mm`` for the camera blur):

    A = sum over ROI of  sqrt(I_A I_P) / sqrt(exp(-mu_body T_body)) x f / (C t)

with the geometric mean of the anterior and posterior counts, the body transmission along the pixel's line
through the CT's attenuation map (exp(-sum mu dy) at 208 keV), the source self-attenuation factor
f = (mu_s t_s / 2) / sinh(mu_s t_s / 2) of the organ's own thickness t_s and mean attenuation mu_s along that line,
the one-head planar sensitivity C (cps/MBq) and the frame time t (s). With ``background``, the counts of tissue
in front of and behind the organ are removed as Buijs et al. (J Nucl Med 1998;39:2167-2172): the geometric mean
of a ring around the ROI (outside every organ's ROI) times (1 - t_s / T_body) is subtracted from each view pixel by
pixel before the geometric mean.

Arrays follow :class:`~DosimetryCore.imaging.projection.PlanarProjector`: volumes (z, y, x) with y the
antero-posterior axis, planar images (z, x), the posterior mirrored into the anterior's orientation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from DosimetryCore.core.validation import check_spacing

DEFAULT_ROI_MARGIN_MM = 10.0
"""How far an organ's ROI reaches beyond its projection: about the collimator's FWHM at 10-20 cm (MELP)."""
BACKGROUND_RING_MM = 10.0
"""Width of the background ring around each ROI."""
BODY_MU_PER_CM = 0.02
"""Voxels attenuating more than this (1/cm at 208 keV; air about 0.0001, lung about 0.04) are body."""


def _disk(radius_px: tuple[float, float]) -> np.ndarray:
    rz, rx = (max(r, 0.0) for r in radius_px)
    z, x = np.ogrid[-int(rz) : int(rz) + 1, -int(rx) : int(rx) + 1]
    return ((z / max(rz, 1e-9)) ** 2 + (x / max(rx, 1e-9)) ** 2 <= 1.0) if rz >= 1 or rx >= 1 else np.ones((1, 1), bool)


def _widened(mask: np.ndarray, margin_mm: float, spacing_zx: tuple[float, float]) -> np.ndarray:
    if margin_mm <= 0:
        return mask
    return ndimage.binary_dilation(mask, _disk((margin_mm / spacing_zx[0], margin_mm / spacing_zx[1])))


def self_attenuation_factor(mu_t: np.ndarray) -> np.ndarray:
    """f = (x / 2) / sinh(x / 2) of a uniform source of attenuation thickness ``mu_t`` (1 at 0)."""
    half = np.asarray(mu_t, np.float64) / 2.0
    return np.where(half > 1e-8, half / np.sinh(np.maximum(half, 1e-8)), 1.0)


def conjugate_view_activities(
    anterior: np.ndarray,
    posterior: np.ndarray,
    mu_per_cm: np.ndarray,
    labels: np.ndarray,
    names: Mapping[int, str],
    spacing_zyx_mm: Sequence[float],
    *,
    sensitivity_cps_per_MBq: float,
    time_s: float,
    roi_margin_mm: float = DEFAULT_ROI_MARGIN_MM,
    background: bool = True,
) -> list[dict[str, Any]]:
    """Each named organ's activity (MBq) by the conjugate-view method (see the module docstring).

    Args:
        anterior, posterior: counts (z, x), posterior mirrored into the anterior's orientation.
        mu_per_cm: attenuation map (1/cm, (z, y, x)) at the photopeak, from the CT.
        labels: organ labelmap (z, y, x) on the same grid; ``names`` maps its labels to organ names.
        spacing_zyx_mm: voxel size (mm).
        sensitivity_cps_per_MBq: one head's planar sensitivity; time_s: frame duration.
    Returns:
        per organ: organ, label, roi_pixels, activity_MBq, mean_transmission, background_subtracted_fraction.
    """
    spacing = check_spacing(spacing_zyx_mm)
    anterior, posterior = np.asarray(anterior, np.float64), np.asarray(posterior, np.float64)
    mu, labels = np.asarray(mu_per_cm, np.float64), np.asarray(labels)
    if mu.shape != labels.shape or mu.ndim != 3:
        raise ValueError(f"mu_per_cm and labels: expected one (z, y, x) shape, got {mu.shape} and {labels.shape}")
    planar_shape = (mu.shape[0], mu.shape[2])
    for image, name in ((anterior, "anterior"), (posterior, "posterior")):
        if image.shape != planar_shape:
            raise ValueError(
                f"{name}: shape {image.shape} is not the volume's coronal projection (z, x) {planar_shape}"
            )
        if not np.all(np.isfinite(image)) or np.any(image < 0):
            raise ValueError(f"{name}: counts must be finite and >= 0")
    if not (sensitivity_cps_per_MBq > 0 and time_s > 0):
        raise ValueError("sensitivity_cps_per_MBq and time_s: expected positive values")
    dy_cm = spacing[1] / 10.0
    spacing_zx = (spacing[0], spacing[2])
    transmission = np.exp(-mu.sum(axis=1) * dy_cm)
    body_cm = (mu > BODY_MU_PER_CM).sum(axis=1) * dy_cm
    present = {int(k): v for k, v in names.items() if np.any(labels == k)}
    rois = {label: _widened((labels == label).any(axis=1), roi_margin_mm, spacing_zx) for label in present}
    any_roi = np.logical_or.reduce(list(rois.values())) if rois else np.zeros(planar_shape, bool)
    per_MBq = sensitivity_cps_per_MBq * time_s
    rows = []
    for label, organ in present.items():
        inside = labels == label
        thickness_cm = inside.sum(axis=1) * dy_cm
        factor = self_attenuation_factor((mu * inside).sum(axis=1) * dy_cm)
        roi = rois[label]
        front, back = anterior, posterior
        if background:
            ring = _widened(roi, BACKGROUND_RING_MM, spacing_zx) & ~any_roi & (body_cm > 0)
            share = np.clip(1.0 - thickness_cm / np.maximum(body_cm, 1e-9), 0.0, 1.0)
            front = np.clip(anterior - (anterior[ring].mean() if ring.any() else 0.0) * share, 0.0, None)
            back = np.clip(posterior - (posterior[ring].mean() if ring.any() else 0.0) * share, 0.0, None)
        mean = np.sqrt(front * back)
        subtracted = 1.0 - float(mean[roi].sum() / max(np.sqrt(anterior * posterior)[roi].sum(), 1e-12))
        corrected = mean / np.sqrt(np.maximum(transmission, 1e-12)) * factor
        rows.append({
            "organ": organ, "label": label, "roi_pixels": int(roi.sum()),
            "activity_MBq": float(corrected[roi].sum() / per_MBq),
            "mean_transmission": float(transmission[roi].mean()), "background_subtracted_fraction": subtracted,
        })  # fmt: skip
    return rows
