"""Random fields and shapes of the phantoms: smooth noise, rotated ellipsoids and their variation, checks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from DosimetryCore.core.validation import three_values
from DosimetryCore.phantoms.tables import (
    _FOV_MIN_XY_MM,
    _MIN_SIZE,
    _WINDOW_S_MM,
    _WINDOW_TOP_HEAD_NECK_MM,
    TRACERS,
    _Ellipsoid,
)

# ----------------------------------------------------------------------------------------------
# Validation helpers


def _check_size(size: object) -> tuple[int, int, int]:
    values = three_values(size, "size")
    if not all(v.is_integer() for v in values):
        raise ValueError(f"size: expected whole numbers of voxels, got {size!r}")
    if min(values) < _MIN_SIZE:
        raise ValueError(f"size: expected at least {_MIN_SIZE} voxels per axis, got {size!r}")
    x, y, z = (int(v) for v in values)
    return x, y, z


def _check_tracer(tracer: str) -> str:
    canonical = str(tracer).upper()
    if canonical not in TRACERS:
        raise ValueError(f"tracer: expected one of {TRACERS}, got {tracer!r}")
    return canonical


def _torso_window(size: tuple[int, int, int], spacing: tuple[float, float, float], salivary_glands: bool) -> float:
    """Check the field of view holds the phantom; return the s (mm) of the image centre."""
    fov = tuple(n * d for n, d in zip(size, spacing, strict=True))
    low, high = _WINDOW_S_MM[0], _WINDOW_TOP_HEAD_NECK_MM if salivary_glands else _WINDOW_S_MM[1]
    need = (*_FOV_MIN_XY_MM, high - low)
    if any(f < n for f, n in zip(fov, need, strict=True)):
        hint = " (salivary_glands=True adds the neck and lower head)" if salivary_glands else ""
        raise ValueError(
            f"size, spacing_mm: field of view {tuple(round(f) for f in fov)} mm (x, y, z) is smaller than the "
            f"phantom needs, {tuple(round(n) for n in need)} mm{hint}; use more voxels or a larger spacing"
        )
    return (low + high) / 2.0


# ----------------------------------------------------------------------------------------------
# Random fields and shapes


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], spacing: tuple[float, ...], correlation_mm: float
) -> np.ndarray:
    """Smooth Gaussian random field of ``shape`` (z, y, x), zero mean and unit std, float32.

    White noise on knots every ``correlation_mm / 2`` convolved with a Gaussian of that sigma,
    evaluated separably (one small matrix product per axis).
    """
    step = correlation_mm / 2.0
    extents = [(n - 1) * d for n, d in zip(shape, spacing, strict=True)]
    knots = [int(np.ceil((extent + 2 * correlation_mm) / step)) + 1 for extent in extents]
    field = rng.standard_normal(knots)
    for axis, (n, d, m) in enumerate(zip(shape, spacing, knots, strict=True)):
        points = (np.arange(n) - (n - 1) / 2.0) * d
        centres = (np.arange(m) - (m - 1) / 2.0) * step
        weights = np.exp(-0.5 * ((points[:, None] - centres[None, :]) / step) ** 2)
        field = np.moveaxis(np.tensordot(weights, field, axes=([1], [axis])), 0, axis)
    field -= field.mean()
    field /= field.std()
    return field.astype(np.float32)


def _rotation(angles_deg: Sequence[float]) -> np.ndarray:
    """Rotation matrix (local -> frame) for rotations about x, then y, then z/s by ``angles_deg``."""
    return Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()


def _ellipsoid(
    points: Sequence[np.ndarray], ellipsoid: _Ellipsoid, rough: np.ndarray | float = 0.0, roughness: float = 0.0
) -> np.ndarray:
    """Boolean mask of the points (three broadcastable coordinate arrays, mm) inside ``ellipsoid``.

    The surface is perturbed by ``roughness * rough`` in units of the normalised radius squared.
    """
    rotation = _rotation(ellipsoid.angles_deg).tolist()  # Python floats keep float32 arrays float32
    offsets = [p - float(c) for p, c in zip(points, ellipsoid.centre, strict=True)]
    radius2 = 0.0
    for axis in range(3):
        local = rotation[0][axis] * offsets[0] + rotation[1][axis] * offsets[1] + rotation[2][axis] * offsets[2]
        radius2 = radius2 + (local / ellipsoid.semi[axis]) ** 2
    return radius2 <= 1.0 + roughness * rough


def _vary(
    rng: np.random.Generator,
    ellipsoid: _Ellipsoid,
    shift_mm: float = 8.0,
    volume: tuple[float, float] = (0.8, 1.25),
    angle_deg: float = 8.0,
) -> _Ellipsoid:
    """A random variant: centre shifted by U(+-shift_mm), volume times U(volume), aspect and angles jittered."""
    aspect = rng.uniform(0.92, 1.08, 3)
    scale = rng.uniform(*volume) ** (1.0 / 3.0) * aspect / np.prod(aspect) ** (1.0 / 3.0)
    return _Ellipsoid(
        tuple(float(c) for c in np.add(ellipsoid.centre, rng.uniform(-shift_mm, shift_mm, 3))),
        tuple(float(a) for a in np.multiply(ellipsoid.semi, scale)),
        tuple(float(a) for a in np.add(ellipsoid.angles_deg, rng.uniform(-angle_deg, angle_deg, 3))),
    )
