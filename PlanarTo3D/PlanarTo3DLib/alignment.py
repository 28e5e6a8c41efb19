"""Measured planar images onto the grid's coronal projection: the patient's own anterior/posterior scintigraphy
is registered to anterior/posterior images simulated from the pre-therapy PET through the CT (2D translation and a
small rotation; the pixel size is known), as Lopez-Montes et al. need the planar images to lie on the CT's
projection grid.

Images here are (rows, columns) with row 0 at the head and columns toward the patient's left, as
:func:`DosimetryCore.io.read_planar` gives them (the posterior already mirrored). The grid's projections
(:mod:`PlanarTo3DLib.data`, (z, x) with z increasing toward the head) are flipped to that orientation.
Counts are resampled as counts per mm^2 (linear) and multiplied by the grid's pixel area, so totals are kept
up to what falls outside the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

MIN_CORRELATION = 0.7
"""Below this normalised cross-correlation of the geometric-mean images after registration, the measured planar
images are refused as not this patient's (or too unlike the PET to be placed)."""


@dataclass(frozen=True)
class PlanarAlignment:
    """Measured counts on the grid (2, z, x) in the grid's orientation, and how they were placed."""

    counts: np.ndarray
    translation_mm: tuple[float, float]
    rotation_deg: float
    correlation_before: float
    correlation_after: float


def _centred(array: np.ndarray, spacing_xy: tuple[float, float]) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    image.SetSpacing(spacing_xy)
    image.SetOrigin(tuple(-(n - 1) / 2.0 * s for n, s in zip(image.GetSize(), spacing_xy, strict=True)))
    return image


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def align_planar(
    anterior: np.ndarray,
    posterior: np.ndarray,
    pixel_spacing_mm: tuple[float, float],
    simulated: np.ndarray,
    grid_spacing_mm: float,
) -> PlanarAlignment:
    """Place measured ``anterior``/``posterior`` counts (rows, columns; pixel spacing (column, row) in mm) on the
    grid of ``simulated`` (2, z, x) (the PET's projections, any scale). ValueError when the correlation reached
    is below :data:`MIN_CORRELATION`."""
    if anterior.shape != posterior.shape:
        raise ValueError(f"planar images: anterior {anterior.shape} and posterior {posterior.shape} differ")
    if not all(s > 0 for s in pixel_spacing_mm):
        raise ValueError(f"planar images: pixel spacing {pixel_spacing_mm} mm; the DICOM PixelSpacing is needed")
    for name, image in (("anterior", anterior), ("posterior", posterior)):
        if not np.all(np.isfinite(image)) or np.any(image < 0) or not image.sum() > 0:
            raise ValueError(f"{name}: counts must be finite, >= 0 and not all zero")
    pixel_area = float(pixel_spacing_mm[0] * pixel_spacing_mm[1])
    fixed = _centred(np.sqrt(simulated[0] * simulated[1])[::-1], (grid_spacing_mm, grid_spacing_mm))
    views = [_centred(view / pixel_area, pixel_spacing_mm) for view in (anterior, posterior)]
    moving = sitk.Sqrt(views[0] * views[1])
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsCorrelation()
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=4.0, minStep=0.01, numberOfIterations=300)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([1.0, 0.0])
    transform = sitk.Euler2DTransform()
    method.SetInitialTransform(transform, inPlace=True)
    before = _correlation(sitk.GetArrayFromImage(fixed), sitk.GetArrayFromImage(sitk.Resample(moving, fixed)))
    method.Execute(fixed, moving)
    area = grid_spacing_mm**2
    placed = [sitk.GetArrayFromImage(sitk.Resample(view, fixed, transform, sitk.sitkLinear, 0.0)) * area
              for view in views]  # fmt: skip
    after = _correlation(sitk.GetArrayFromImage(fixed), np.sqrt(placed[0] * placed[1]))
    if after < MIN_CORRELATION:
        raise ValueError(
            f"planar images: they correlate {after:.2f} with the PET's simulated projections after registration "
            f"(before {before:.2f}; at least {MIN_CORRELATION} needed): not this patient, or not placeable"
        )
    counts = np.stack([view[::-1] for view in placed]).astype(np.float32)
    return PlanarAlignment(counts, tuple(transform.GetTranslation()), math.degrees(transform.GetAngle()), before, after)
