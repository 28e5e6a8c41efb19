"""Patient-specific augmentation of Lopez-Montes et al. (seed 000): :func:`augment`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import SimpleITK as sitk

from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.core.validation import check_positive, check_range, check_seed
from DosimetryCore.core.volume import array_from_image, image_from_array
from DosimetryCore.phantoms.tables import HU, LABELS, Phantom
from DosimetryCore.phantoms.torso import _phantom, _provenance


def augment(
    case: Phantom,
    seed: int,
    *,
    uptake_scale: tuple[float, float] = (0.5, 2.0),
    max_rotation_deg: float = 5.0,
    max_translation_mm: float = 20.0,
    progress: ProgressCallback | None = None,
) -> Phantom:
    """Patient-specific augmentation (seed 000): new uptakes and a small rigid motion of ``case``.

    Every label's activity is multiplied by its own factor U(``uptake_scale``) (default half to
    double, as in the paper; the total activity changes accordingly). Then activity, CT and
    labelmap are rotated about the image centre by U(+-``max_rotation_deg``) degrees about each
    axis and translated by U(+-``max_translation_mm``) mm along each axis (default 20 mm: the
    paper's +-20 cm were for a 1 m whole-body field, which would move a torso out of this field of
    view). Resampling is linear for activity (outside: 0 Bq/mL) and CT (outside: air) and nearest
    neighbour for the labelmap. Lesion centres and uptakes follow; the factors, angles and
    translation are recorded in the provenance with the source case's provenance.
    """
    report = progress or no_progress
    if not isinstance(case, Phantom):
        raise ValueError(f"case: expected a Phantom, got {type(case).__name__}")
    seed = check_seed(seed)
    scales = check_range(uptake_scale, "uptake_scale")
    max_rotation = check_positive(max_rotation_deg, "max_rotation_deg", allow_zero=True)
    max_translation = check_positive(max_translation_mm, "max_translation_mm", allow_zero=True)

    rng = np.random.default_rng(seed)
    factors = {name: float(rng.uniform(*scales)) for _, name in sorted(case.label_names.items())}
    angles = rng.uniform(-max_rotation, max_rotation, 3)
    translation = rng.uniform(-max_translation, max_translation, 3)
    table = np.ones(max(LABELS.values()) + 1)
    for name, factor in factors.items():
        table[LABELS[name]] = factor
    scaled = (array_from_image(case.activity) * table[array_from_image(case.labels)]).astype(np.float32)
    report(0.2, "Resampling")
    size = case.ct.GetSize()
    centre = case.ct.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in size])
    transform = sitk.Euler3DTransform(centre, *np.deg2rad(angles), translation.tolist())
    reference = case.ct

    def moved(image: sitk.Image, interpolator: int, outside: float) -> sitk.Image:
        return sitk.Resample(image, reference, transform, interpolator, outside, image.GetPixelID())

    activity = moved(image_from_array(scaled, reference), sitk.sitkLinear, 0.0)
    ct = moved(case.ct, sitk.sitkLinear, HU["air"])
    labels = moved(case.labels, sitk.sitkNearestNeighbor, 0.0)
    inverse = transform.GetInverse()
    lesions = tuple(
        replace(
            lesion,
            centre_mm=tuple(inverse.TransformPoint(lesion.centre_mm)),
            relative_uptake=lesion.relative_uptake * factors[f"lesion_{lesion.site}"],
        )
        for lesion in case.lesions
    )
    parameters = {
        "uptake_scale": scales,
        "max_rotation_deg": max_rotation,
        "max_translation_mm": max_translation,
    }
    provenance = _provenance(
        "augment",
        seed,
        parameters,
        uptake_factors=factors,
        rotation_deg=angles.tolist(),
        translation_mm=translation.tolist(),
        source=case.provenance,
    )
    report(1.0, "Augmented case ready")
    return _phantom(ct, labels, activity, lesions, provenance)
