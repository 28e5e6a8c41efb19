"""Random activity distributions of Leube et al. (seed 003) for DL-PVC training: :func:`random_activity`."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.core.provenance import stamp
from DosimetryCore.core.validation import check_positive, check_range, check_seed
from DosimetryCore.core.volume import array_from_image, image_from_array, require_image, set_unit, voxel_volume_ml
from DosimetryCore.phantoms.fields import _ellipsoid, _smooth_noise
from DosimetryCore.phantoms.tables import Phantom, _Ellipsoid
from DosimetryCore.phantoms.torso import _log_uniform, _provenance, _scale_to_total


def random_activity(
    body: sitk.Image | Phantom,
    seed: int,
    *,
    total_activity_MBq: float = 3000.0,
    active_fraction: tuple[float, float] = (0.02, 0.2),
    shape_diameter_mm: tuple[float, float] = (10.0, 240.0),
    level_range: tuple[float, float] = (1.0, 10.0),
    heterogeneity: float = 0.5,
    pattern_correlation_mm: float = 40.0,
    progress: ProgressCallback | None = None,
) -> sitk.Image:
    """Random activity distribution inside a body mask, as used to train DL-PVC (seed 003).

    ``body`` is a mask image (non-zero = inside the body, e.g. a labelmap) or a :class:`Phantom`
    (its labelmap). A target active volume, a fraction U(``active_fraction``) of the body, is drawn;
    random ellipsoids with rough surfaces (diameters log-uniform in ``shape_diameter_mm``, mm;
    the paper's 4-100 voxels of 2.4 mm; other axes 0.5-1 times, random orientation) are centred on
    random body voxels, clipped to the body and added until the active volume reaches the target.
    Each shape has a level log-uniform in ``level_range`` (overlaps keep the higher); the mask is
    multiplied by a smooth non-uniform pattern exp(``heterogeneity`` * g), g a unit-std Gaussian
    field with ``pattern_correlation_mm`` correlation, and scaled so the image holds
    ``total_activity_MBq`` (MBq). Returns a float32 image in Bq/mL on the grid of the mask,
    zero outside the body, with provenance metadata.
    """
    report = progress or no_progress
    reference = body.labels if isinstance(body, Phantom) else require_image(body, "body")
    inside = array_from_image(reference) > 0
    if not inside.any():
        raise ValueError("body: the mask is empty (no non-zero voxel)")
    seed = check_seed(seed)
    total = check_positive(total_activity_MBq, "total_activity_MBq")
    fractions = check_range(active_fraction, "active_fraction", upper=1.0)
    diameters = check_range(shape_diameter_mm, "shape_diameter_mm")
    levels = check_range(level_range, "level_range")
    heterogeneity = check_positive(heterogeneity, "heterogeneity", allow_zero=True)
    correlation = check_positive(pattern_correlation_mm, "pattern_correlation_mm")
    shape, spacing = inside.shape, tuple(reference.GetSpacing())[::-1]

    rng = np.random.default_rng(seed)
    target_fraction = float(rng.uniform(*fractions))
    target = max(1, int(np.ceil(target_fraction * inside.sum())))
    roughness = 0.3
    rough = _smooth_noise(rng, shape, spacing, 20.0)
    reach = np.sqrt(1.0 + roughness * max(float(rough.max()), 0.0))  # largest radius / semi-axis
    axes = [np.arange(n) * d for n, d in zip(shape, spacing, strict=True)]
    candidates = np.flatnonzero(inside)
    level = np.zeros(shape, dtype=np.float32)
    active, n_shapes = 0, 0
    while active < target:
        voxel = np.unravel_index(candidates[rng.integers(candidates.size)], shape)
        semi = _log_uniform(rng, *diameters) / 2.0 * np.array([1.0, *rng.uniform(0.5, 1.0, 2)])
        angles = tuple(float(a) for a in rng.uniform(-180.0, 180.0, 3))
        value = np.float32(_log_uniform(rng, *levels))
        box = tuple(
            slice(max(0, i - int(reach * semi.max() / d) - 1), i + int(reach * semi.max() / d) + 2)
            for i, d in zip(voxel, spacing, strict=True)
        )
        points = (axes[2][box[2]][None, None, :], axes[1][box[1]][None, :, None], axes[0][box[0]][:, None, None])
        centre = (axes[2][voxel[2]], axes[1][voxel[1]], axes[0][voxel[0]])
        mask = _ellipsoid(points, _Ellipsoid(centre, tuple(semi), angles), rough[box], roughness) & inside[box]
        mask[tuple(i - b.start for i, b in zip(voxel, box, strict=True))] = True
        active += int(np.count_nonzero(mask & (level[box] == 0)))
        level[box] = np.where(mask, np.maximum(level[box], value), level[box])
        n_shapes += 1
        report(0.9 * min(active / target, 1.0), f"Placing random shapes ({n_shapes})")
    pattern = np.exp(heterogeneity * _smooth_noise(rng, shape, spacing, correlation).astype(np.float64))
    activity = _scale_to_total(level * pattern, total, voxel_volume_ml(reference))
    parameters = {
        "total_activity_MBq": total,
        "active_fraction": fractions,
        "shape_diameter_mm": diameters,
        "level_range": levels,
        "heterogeneity": heterogeneity,
        "pattern_correlation_mm": correlation,
    }
    provenance = _provenance(
        "random_activity",
        seed,
        parameters,
        target_active_fraction=target_fraction,
        active_fraction=active / int(inside.sum()),
        n_shapes=n_shapes,
    )
    image = image_from_array(activity, reference, unit="Bq/mL")
    set_unit(image, "Bq/mL", "activity concentration")
    report(1.0, "Random activity ready")
    return stamp(image, provenance)
