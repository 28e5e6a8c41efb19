"""Synthetic torsos, random activity distributions and patient-specific augmentation.

Three generators feed the simulation side of DeepDosimetry; all are seeded (the same seed gives
bit-identical output on the same machine) and vectorised over voxels:

- :func:`make_torso` builds a synthetic patient: CT (HU), labelmap with a name table, and the 177Lu
  activity concentration (Bq/mL) of a PSMA or DOTATATE therapy at about 24 h after injection.
- :func:`random_activity` builds the random activity distributions of seed 003 (Leube et al.):
  random shapes placed in the body until a target active volume is reached, times a smooth
  non-uniform pattern, scaled to a patient-like total activity.
- :func:`augment` is the patient-specific augmentation of seed 000 (Lopez-Montes et al.): every
  organ's uptake times U(0.5, 2), random rotations (+-5 degrees) and translations, applied to
  activity, CT and labelmap together.

Geometry follows :mod:`DosimetryCore.core.volume`: LPS, identity direction, arrays ``(z, y, x)`` with x
toward the patient's left, y toward posterior (anterior at low y index) and z toward superior; the
origin is chosen so that the centre of the image is the physical point (0, 0, 0).

The anatomy is described in an *anatomical frame* in mm: ``x`` (patient left positive), ``y``
(posterior positive, 0 near the middle of the abdomen) and ``s``, the height above the pubic
symphysis. The field of view is a window of ``s`` centred on the phantom: pelvis (just below the
pubic symphysis) to lung apex, about 610 mm, or up to the parotid glands, about 760 mm, when
``salivary_glands=True``; a head-neck window that long does not fit in 128 slices of 4.8 mm, so
the glands need e.g. ``size=(128, 128, 160)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from DosimetryCore import __version__
from DosimetryCore.core.constants import BQ_PER_MBQ
from DosimetryCore.core.metadata import LABEL_NAMES_KEY
from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.core.provenance import stamp
from DosimetryCore.core.validation import check_positive, check_range, check_seed, check_spacing, three_values
from DosimetryCore.core.volume import array_from_image, image_from_array, require_image, set_unit, voxel_volume_ml

LABELS: dict[str, int] = {
    "body": 1,  # soft tissue, subcutaneous fat and everything not named below
    "lung_right": 2,
    "lung_left": 3,
    "liver": 4,
    "spleen": 5,
    "kidney_right_cortex": 6,
    "kidney_right_medulla": 7,
    "kidney_left_cortex": 8,
    "kidney_left_medulla": 9,
    "spine": 10,  # vertebrae L5..C1 (bodies and posterior arches)
    "ribs": 11,
    "pelvis": 12,  # iliac wings, sacrum, pubic/ischial ring, femoral heads
    "bladder": 13,
    "parotid_right": 14,
    "parotid_left": 15,
    "submandibular_right": 16,
    "submandibular_left": 17,
    "lesion_liver": 18,
    "lesion_bone": 19,
    "lesion_lymph_node": 20,
}
"""Label values of :func:`make_torso` labelmaps (0 is air outside the body)."""

TRACERS = ("PSMA", "DOTATATE")

# Relative 177Lu activity concentration (SUV-like: concentration / mean concentration in the body)
# at about 24 h after injection, as (low, high); each phantom samples every label log-uniformly.
# These are plausible ranges, not a fit to patient data. They are informed by the ratios of organ
# absorbed doses per administered activity (absorbed dose ~ time-integrated concentration), e.g.
# 177Lu-PSMA-617/I&T: kidneys and salivary glands highest among organs, liver and spleen about
# 4-8 times lower, red marrow lowest (Violet et al., J Nucl Med 2019;60:517-523; Ells et al.,
# J Nucl Med 2024;65:1264-1271 (meta-analysis)); 177Lu-DOTATATE: spleen >= kidneys > liver, low
# salivary uptake (e.g. 1.17, 0.57 and 0.27 mGy/MBq for spleen, kidneys and liver in "Dosimetric
# analyses of kidneys, liver, spleen, pituitary gland, and neuroendocrine tumors of patients
# treated with 177Lu-DOTATATE", Clin Nucl Med 2013;38:188-194; Sandstrom et al., J Nucl Med
# 2013;54:33-41). Tumour concentrations vary over a decade in both. Kidney cortex/medulla split
# following the higher cortical retention of both peptides.
UPTAKE_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "PSMA": {
        "body": (0.4, 0.8),
        "lung": (0.1, 0.3),
        "liver": (1.5, 4.0),
        "spleen": (1.0, 3.0),
        "kidney_cortex": (8.0, 20.0),
        "kidney_medulla": (3.0, 8.0),
        "bone": (0.3, 1.0),
        "bladder": (2.0, 10.0),
        "salivary": (8.0, 20.0),
        "lesion": (10.0, 60.0),
    },
    "DOTATATE": {
        "body": (0.3, 0.7),
        "lung": (0.1, 0.3),
        "liver": (2.0, 5.0),
        "spleen": (8.0, 20.0),
        "kidney_cortex": (6.0, 16.0),
        "kidney_medulla": (2.0, 6.0),
        "bone": (0.5, 1.5),
        "bladder": (2.0, 10.0),
        "salivary": (0.5, 2.0),
        "lesion": (15.0, 60.0),
    },
}

LESION_SITES: dict[str, dict[str, float]] = {
    "PSMA": {"bone": 0.5, "lymph_node": 0.35, "liver": 0.15},  # prostate cancer: mostly bone and nodes
    "DOTATATE": {"liver": 0.6, "lymph_node": 0.25, "bone": 0.15},  # NETs: mostly liver
}
"""Probability of each lesion site per tracer."""

HU: dict[str, float] = {
    "air": -1000.0,
    "lung": -800.0,
    "adipose": -100.0,
    "soft_tissue": 40.0,
    "liver": 60.0,
    "spleen": 50.0,
    "kidney": 30.0,
    "bladder": 10.0,  # urine
    "salivary": 20.0,
    "spongy_bone": 300.0,
    "cortical_bone": 1100.0,
    "lesion_liver": 35.0,  # hypodense metastasis
    "lesion_bone": 700.0,  # sclerotic metastasis
    "lesion_lymph_node": 35.0,
}
"""CT numbers (HU) of the tissues of :func:`make_torso`."""

_MIN_SIZE = 16
_BODY_WALL_MM = 10.0  # muscle wall between the subcutaneous fat and the organs
_MAX_LESIONS = 50
_FOV_MIN_XY_MM = (500.0, 360.0)
_WINDOW_S_MM = (-20.0, 590.0)  # pelvis to lung apex
_WINDOW_TOP_HEAD_NECK_MM = 740.0  # above the parotid glands

# Lean body cross-section along s: s, lateral and AP semi-axes, AP centre (mm).
_BODY_PROFILE = np.array(
    [
        [-200.0, 165.0, 105.0, 0.0],
        [0.0, 165.0, 105.0, 0.0],
        [150.0, 155.0, 100.0, 0.0],
        [250.0, 140.0, 100.0, 0.0],
        [400.0, 150.0, 110.0, 0.0],
        [520.0, 160.0, 105.0, 0.0],
        [570.0, 185.0, 95.0, 5.0],
        [610.0, 150.0, 80.0, 10.0],
        [635.0, 60.0, 60.0, 20.0],
        [660.0, 55.0, 60.0, 15.0],
        [690.0, 68.0, 82.0, 10.0],
        [740.0, 75.0, 92.0, 10.0],
        [1000.0, 75.0, 92.0, 10.0],
    ]
)
_FAT_PROFILE = np.array([[600.0, 1.0], [640.0, 0.3]])  # fraction of the trunk's fat thickness
# Rib cage (ring through the ribs) along s: s, lateral and AP semi-axes (mm).
_RIB_PROFILE = np.array([[320.0, 135.0, 92.0], [450.0, 135.0, 95.0], [540.0, 118.0, 86.0], [590.0, 80.0, 66.0]])
# Vertebral bodies along s: s, AP centre, lateral and AP semi-axes (mm).
_SPINE_PROFILE = np.array(
    [[180.0, 50.0, 24.0, 17.0], [350.0, 45.0, 22.0, 16.0], [450.0, 55.0, 17.0, 14.0], [600.0, 40.0, 14.0, 11.0],
     [640.0, 25.0, 12.0, 9.0], [720.0, 20.0, 12.0, 9.0]]
)  # fmt: skip
_LYMPH_NODE_STATIONS = (  # (x range, y range, s range) in mm: para-aortic, iliac (R, L), mediastinal
    ((-35.0, 35.0), (-15.0, 30.0), (200.0, 380.0)),
    ((-90.0, -35.0), (-20.0, 50.0), (70.0, 200.0)),
    ((35.0, 90.0), (-20.0, 50.0), (70.0, 200.0)),
    ((-30.0, 30.0), (-50.0, 30.0), (470.0, 560.0)),
)


@dataclass(frozen=True)
class Lesion:
    """One lesion of a phantom: site, centre (LPS, mm), nominal diameter (mm), relative uptake (SUV-like)."""

    site: str
    centre_mm: tuple[float, float, float]
    diameter_mm: float
    relative_uptake: float


@dataclass(frozen=True)
class Phantom:
    """A synthetic patient on one grid (all three images share geometry).

    ``ct``: CT numbers in HU (float32). ``labels``: labelmap (uint8) with ``label_names`` mapping the
    values present to names (see :data:`LABELS`). ``activity``: 177Lu activity concentration in
    Bq/mL (float32, unit metadata "Bq/mL"). ``provenance``: generator, seed, parameters and sampled
    values, also stored as JSON under :data:`PROVENANCE_KEY` in each image's metadata.
    """

    ct: sitk.Image
    labels: sitk.Image
    label_names: dict[int, str]
    activity: sitk.Image
    lesions: tuple[Lesion, ...]
    provenance: dict[str, Any]


@dataclass(frozen=True)
class _Ellipsoid:
    """Ellipsoid in the anatomical frame: centre (x, y, s) and semi-axes in mm, rotation angles in degrees."""

    centre: tuple[float, float, float]
    semi: tuple[float, float, float]
    angles_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class _Space:
    """Deformed anatomical coordinates (mm) of every voxel and a smooth unit-std field, each (z, y, x) float32."""

    x: np.ndarray
    y: np.ndarray
    s: np.ndarray
    rough: np.ndarray


# Nominal organs in the anatomical frame (right = negative x).
_LUNGS = {
    "lung_right": _Ellipsoid((-75.0, 5.0, 400.0), (58.0, 90.0, 190.0)),
    "lung_left": _Ellipsoid((75.0, 5.0, 400.0), (55.0, 90.0, 190.0)),
}
_HEART = _Ellipsoid((25.0, -25.0, 470.0), (55.0, 45.0, 60.0), (0.0, 0.0, -30.0))
_LIVER = (_Ellipsoid((-65.0, 0.0, 410.0), (65.0, 75.0, 70.0)), _Ellipsoid((20.0, -40.0, 425.0), (50.0, 30.0, 40.0)))
_SPLEEN = _Ellipsoid((85.0, 40.0, 420.0), (28.0, 45.0, 45.0), (0.0, 0.0, 30.0))
_KIDNEYS = {
    "right": _Ellipsoid((-70.0, 55.0, 300.0), (28.0, 24.0, 55.0), (0.0, -15.0, 25.0)),
    "left": _Ellipsoid((70.0, 55.0, 320.0), (28.0, 24.0, 55.0), (0.0, 15.0, -25.0)),
}
_MEDULLA_SCALE = 0.6
_BLADDER = _Ellipsoid((0.0, -15.0, 50.0), (45.0, 35.0, 35.0))
_PELVIS = (
    _Ellipsoid((-85.0, 35.0, 150.0), (12.0, 55.0, 65.0), (0.0, 0.0, 40.0)),  # iliac wings
    _Ellipsoid((85.0, 35.0, 150.0), (12.0, 55.0, 65.0), (0.0, 0.0, -40.0)),
    _Ellipsoid((0.0, 70.0, 130.0), (40.0, 18.0, 60.0), (-30.0, 0.0, 0.0)),  # sacrum
    _Ellipsoid((-95.0, 10.0, 30.0), (24.0, 24.0, 24.0)),  # femoral heads
    _Ellipsoid((95.0, 10.0, 30.0), (24.0, 24.0, 24.0)),
)
_SALIVARY = {
    "parotid_right": _Ellipsoid((-46.0, 15.0, 700.0), (12.0, 22.0, 22.0)),
    "parotid_left": _Ellipsoid((46.0, 15.0, 700.0), (12.0, 22.0, 22.0)),
    "submandibular_right": _Ellipsoid((-38.0, -15.0, 665.0), (11.0, 14.0, 11.0)),
    "submandibular_left": _Ellipsoid((38.0, -15.0, 665.0), (11.0, 14.0, 11.0)),
}


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
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


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


# ----------------------------------------------------------------------------------------------
# Torso anatomy


def _anatomical_space(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    s_centre: float,
    deformation_mm: float,
) -> _Space:
    """Voxel coordinates in the anatomical frame after a smooth random displacement of ``deformation_mm`` std."""
    axes = [(np.arange(n) - (n - 1) / 2.0) * d for n, d in zip(shape, spacing, strict=True)]
    s, y, x = np.meshgrid(axes[0] + s_centre, axes[1], axes[2], indexing="ij")
    coords = []
    for grid in (x, y, s):
        coords.append((grid + deformation_mm * _smooth_noise(rng, shape, spacing, 120.0)).astype(np.float32))
    return _Space(coords[0], coords[1], coords[2], _smooth_noise(rng, shape, spacing, 30.0))


def _body_masks(space: _Space, girth: float, fat_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(body, lean, cavity) masks: inside the skin, under the subcutaneous fat, inside a 10 mm wall.

    Organs and bones are confined to the cavity, so that they never reach the fat or the skin.
    """
    profile = [np.interp(space.s, _BODY_PROFILE[:, 0], _BODY_PROFILE[:, i]).astype(np.float32) for i in (1, 2, 3)]
    fat = fat_mm * np.interp(space.s, _FAT_PROFILE[:, 0], _FAT_PROFILE[:, 1]).astype(np.float32)
    lateral, ap, centre = profile[0] * girth, profile[1] * girth, profile[2]
    dy = space.y - centre

    def inside(margin: np.ndarray | float) -> np.ndarray:
        return (space.x / (lateral + margin)) ** 2 + (dy / (ap + margin)) ** 2 <= 1.0

    return inside(fat), inside(0.0), inside(-_BODY_WALL_MM)


def _ring(
    x: np.ndarray, y: np.ndarray, lateral: np.ndarray | float, ap: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For an elliptic ring centred on the s axis: (distance from the ring in mm, sine of the angle toward
    posterior, normalised radius: < 1 inside the ring)."""
    polar = np.sqrt(x**2 + y**2) + 1e-6
    normalised = np.sqrt((x / lateral) ** 2 + (y / ap) ** 2) + 1e-6
    return np.abs(polar * (1.0 - 1.0 / normalised)), y / polar, normalised


def _rib_cage(space: _Space, girth: float) -> tuple[np.ndarray, np.ndarray]:
    """(ribs, thorax): 12 pairs of ribs on the rib-cage ring (posterior ends every 22 mm, 70 mm lower
    anteriorly, no cartilage) and the space inside the ring, to which the lungs are confined."""
    top, pitch, drop, radius_mm, half_height_mm = 565.0, 22.0, 70.0, 5.0, 6.0
    lateral = np.interp(space.s, _RIB_PROFILE[:, 0], _RIB_PROFILE[:, 1]).astype(np.float32) * girth
    ap = np.interp(space.s, _RIB_PROFILE[:, 0], _RIB_PROFILE[:, 2]).astype(np.float32) * girth
    distance, posterior, normalised = _ring(space.x, space.y, lateral, ap)
    unrolled = space.s + drop * (1.0 - posterior) / 2.0  # height of the rib's posterior end through this voxel
    index = np.rint((top - unrolled) / pitch)
    on_rib = (np.abs(unrolled - (top - index * pitch)) <= half_height_mm) & (distance <= radius_mm)
    floating = index >= 10
    lateral_of_spine = np.abs(space.x) > 35.0
    ribs = on_rib & (index >= 0) & (index <= 11) & lateral_of_spine & (posterior > -0.85)
    return ribs & (~floating | (posterior > 0.2)), (normalised < 1.0) & (distance > radius_mm)


def _spine(space: _Space) -> np.ndarray:
    """Vertebral bodies (with 6 mm discs every 28 mm) and posterior arches from L5 to C1."""
    centre, lateral, ap = (np.interp(space.s, _SPINE_PROFILE[:, 0], _SPINE_PROFILE[:, i]) for i in (1, 2, 3))
    in_range = (space.s >= _SPINE_PROFILE[0, 0]) & (space.s <= _SPINE_PROFILE[-1, 0])
    not_disc = np.mod(space.s - _SPINE_PROFILE[0, 0], 28.0) > 6.0
    bodies = (space.x / lateral) ** 2 + ((space.y - centre) / ap) ** 2 <= 1.0
    arches = (space.x / (0.5 * lateral)) ** 2 + ((space.y - centre - ap - 12.0) / 14.0) ** 2 <= 1.0
    return in_range & ((bodies & not_disc) | arches)


def _pelvis(rng: np.random.Generator, space: _Space) -> np.ndarray:
    """Iliac wings, sacrum and femoral heads (ellipsoids) and the pubic/ischial ring around s = 0."""
    points = (space.x, space.y, space.s)
    mask = np.zeros(space.s.shape, dtype=bool)
    for part in _PELVIS:
        mask |= _ellipsoid(points, _vary(rng, part, shift_mm=5.0, volume=(0.85, 1.15)), space.rough, 0.1)
    distance, posterior, _ = _ring(space.x, space.y, 70.0, 60.0)
    return mask | ((distance <= 11.0) & (np.abs(space.s - 5.0) <= 11.0) & (posterior < 0.5))


def _organs(
    rng: np.random.Generator, space: _Space, labels: np.ndarray, cavity: np.ndarray, girth: float, salivary: bool
) -> None:
    """Paint organs and bones into ``labels`` within ``cavity``, later ones over earlier ones."""

    def paint(mask: np.ndarray, name: str) -> None:
        labels[mask & cavity] = LABELS[name]

    points = (space.x, space.y, space.s)
    ribs, thorax = _rib_cage(space, girth)
    lung_space = thorax & (space.s >= 410.0 - 0.4 * space.y)  # diaphragm: lung bases lower posteriorly
    for name, lung in _LUNGS.items():
        paint(_ellipsoid(points, _vary(rng, lung, 5.0, (0.85, 1.15)), space.rough, 0.05) & lung_space, name)
    paint(_ellipsoid(points, _vary(rng, _HEART)), "body")
    liver_scale = rng.uniform(0.8, 1.25)
    liver = np.zeros_like(labels, dtype=bool)
    for lobe in _LIVER:
        liver |= _ellipsoid(points, _vary(rng, lobe, volume=(liver_scale, liver_scale)), space.rough, 0.1)
    paint(liver, "liver")
    paint(_ellipsoid(points, _vary(rng, _SPLEEN), space.rough, 0.1), "spleen")
    for side, kidney in _KIDNEYS.items():
        varied = _vary(rng, kidney, volume=(0.75, 1.25))
        medulla = replace(varied, semi=tuple(_MEDULLA_SCALE * a for a in varied.semi))
        paint(_ellipsoid(points, varied, space.rough, 0.05), f"kidney_{side}_cortex")
        paint(_ellipsoid(points, medulla, space.rough, 0.1), f"kidney_{side}_medulla")
    paint(_ellipsoid(points, _vary(rng, _BLADDER, volume=(0.45, 1.75)), space.rough, 0.05), "bladder")
    paint(ribs, "ribs")
    paint(_pelvis(rng, space), "pelvis")
    paint(_spine(space), "spine")
    if salivary:
        for name, gland in _SALIVARY.items():
            paint(_ellipsoid(points, _vary(rng, gland, shift_mm=4.0), space.rough, 0.1), name)


def _lesion_host(site: str, labels: np.ndarray, cavity: np.ndarray, space: _Space) -> tuple[np.ndarray, np.ndarray]:
    """(mask a lesion at ``site`` may occupy, mask its centre is drawn from)."""
    if site == "liver":
        host = labels == LABELS["liver"]
        return host, host
    if site == "bone":
        host = np.isin(labels, [LABELS["spine"], LABELS["pelvis"]])
        return host, host
    host = (labels == LABELS["body"]) & cavity  # lymph nodes: soft tissue inside the wall, at the nodal stations
    stations = np.zeros_like(host)
    for (x0, x1), (y0, y1), (s0, s1) in _LYMPH_NODE_STATIONS:
        inside_x = (space.x >= x0) & (space.x <= x1)
        stations |= inside_x & (space.y >= y0) & (space.y <= y1) & (space.s >= s0) & (space.s <= s1)
    return host, host & stations


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _lesions(
    rng: np.random.Generator,
    space: _Space,
    labels: np.ndarray,
    cavity: np.ndarray,
    spacing: tuple[float, float, float],
    n_lesions: int,
    diameter_mm: tuple[float, float],
    tracer: str,
) -> tuple[np.ndarray, tuple[Lesion, ...]]:
    """Paint ``n_lesions`` roughly spherical lesions into ``labels``; return their index map (z, y, x) and records.

    A lesion is centred on a random voxel of its host (liver, spine/pelvis, or soft tissue at a
    lymph-node station) and clipped to the host; its centre voxel always belongs to it.
    """
    sites = list(LESION_SITES[tracer])
    probabilities = np.array(list(LESION_SITES[tracer].values()))
    index_map = np.zeros(labels.shape, dtype=np.uint8)
    points = (space.x, space.y, space.s)
    lesions = []
    for number in range(1, n_lesions + 1):
        site = sites[rng.choice(len(sites), p=probabilities)]
        host, centres = _lesion_host(site, labels, cavity, space)
        candidates = np.flatnonzero(centres)
        if candidates.size == 0:
            raise ValueError(f"n_lesions: no room left for lesion {number} ({site})")
        voxel = np.unravel_index(candidates[rng.integers(candidates.size)], labels.shape)
        diameter = float(rng.uniform(*diameter_mm))
        sphere = _Ellipsoid((space.x[voxel], space.y[voxel], space.s[voxel]), (diameter / 2.0,) * 3)
        mask = _ellipsoid(points, sphere, space.rough, 0.15) & host
        mask[voxel] = True
        labels[mask] = LABELS[f"lesion_{site}"]
        index_map[mask] = number
        centre_mm = tuple(float((i - (n - 1) / 2.0) * d) for i, n, d in zip(voxel, labels.shape, spacing, strict=True))
        uptake = _log_uniform(rng, *UPTAKE_RANGES[tracer]["lesion"])
        lesions.append(Lesion(site, centre_mm[::-1], diameter, uptake))
    return index_map, tuple(lesions)


_HU_OF_LABEL = {
    "lung_right": "lung",
    "lung_left": "lung",
    "liver": "liver",
    "spleen": "spleen",
    "kidney_right_cortex": "kidney",
    "kidney_right_medulla": "kidney",
    "kidney_left_cortex": "kidney",
    "kidney_left_medulla": "kidney",
    "bladder": "bladder",
    "parotid_right": "salivary",
    "parotid_left": "salivary",
    "submandibular_right": "salivary",
    "submandibular_left": "salivary",
    "lesion_liver": "lesion_liver",
    "lesion_bone": "lesion_bone",
    "lesion_lymph_node": "lesion_lymph_node",
}
_BONES = ("spine", "ribs", "pelvis")


def _ct(labels: np.ndarray, lean: np.ndarray, rough: np.ndarray) -> np.ndarray:
    """CT numbers (HU, float32, (z, y, x)) from the labelmap: fat outside ``lean``, cortical rim on bones."""
    table = np.full(max(LABELS.values()) + 1, HU["soft_tissue"], dtype=np.float32)
    table[0] = HU["air"]
    for name, tissue in _HU_OF_LABEL.items():
        table[LABELS[name]] = HU[tissue]
    ct = table[labels]
    ct[(labels == LABELS["body"]) & ~lean] = HU["adipose"]
    lungs = (labels == LABELS["lung_right"]) | (labels == LABELS["lung_left"])
    ct[lungs] += 25.0 * rough[lungs]  # mild parenchymal texture
    bone = np.isin(labels, [LABELS[name] for name in _BONES])
    ct[bone] = HU["cortical_bone"]
    in_plane = ndimage.generate_binary_structure(2, 1)[None]  # cortex: the bone's rim in each axial slice
    ct[ndimage.binary_erosion(bone, in_plane)] = HU["spongy_bone"]
    return ct


_UPTAKE_GROUP = {
    "body": "body",
    "lung_right": "lung",
    "lung_left": "lung",
    "liver": "liver",
    "spleen": "spleen",
    "kidney_right_cortex": "kidney_cortex",
    "kidney_right_medulla": "kidney_medulla",
    "kidney_left_cortex": "kidney_cortex",
    "kidney_left_medulla": "kidney_medulla",
    "spine": "bone",
    "ribs": "bone",
    "pelvis": "bone",
    "bladder": "bladder",
    "parotid_right": "salivary",
    "parotid_left": "salivary",
    "submandibular_right": "salivary",
    "submandibular_left": "salivary",
}


def _relative_uptake(
    labels: np.ndarray, uptake: dict[str, float], lesion_index: np.ndarray, lesions: Sequence[Lesion]
) -> np.ndarray:
    """Relative uptake (float64, (z, y, x)) of every voxel: its organ's, or its lesion's inside a lesion."""
    table = np.zeros(max(LABELS.values()) + 1)
    for name, value in uptake.items():
        table[LABELS[name]] = value
    lesion_table = np.array([0.0, *(lesion.relative_uptake for lesion in lesions)])
    return np.where(lesion_index > 0, lesion_table[lesion_index], table[labels])


def _scale_to_total(relative: np.ndarray, total_activity_MBq: float, voxel_ml: float) -> np.ndarray:
    """Scale non-negative ``relative`` values to Bq/mL (float32) so the image holds ``total_activity_MBq``."""
    total_Bq = total_activity_MBq * BQ_PER_MBQ
    return (relative * (total_Bq / (float(relative.sum(dtype=np.float64)) * voxel_ml))).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Images and provenance


def _provenance(generator: str, seed: int, parameters: dict[str, Any], **sampled: Any) -> dict[str, Any]:
    """Provenance record, normalised through JSON (tuples become lists) so it equals its stored copy."""
    record = {"generator": f"DosimetryCore.phantoms.{generator}", "version": __version__, "seed": seed}
    return json.loads(json.dumps({**record, "parameters": parameters, **sampled}, sort_keys=True))


def _stamp(image: sitk.Image, provenance: dict[str, Any]) -> sitk.Image:
    stamp(image, provenance)
    return image


def _present_names(labels: np.ndarray) -> dict[int, str]:
    names = {value: name for name, value in LABELS.items()}
    return {int(v): names[int(v)] for v in np.unique(labels) if v != 0}


def _phantom(
    ct: sitk.Image, labels: sitk.Image, activity: sitk.Image, lesions: tuple[Lesion, ...], provenance: dict[str, Any]
) -> Phantom:
    """Stamp units, label names and provenance on the three images and wrap them."""
    names = _present_names(array_from_image(labels))
    set_unit(ct, "HU", "CT number")
    set_unit(activity, "Bq/mL", "activity concentration")
    labels.SetMetaData(LABEL_NAMES_KEY, json.dumps({str(k): v for k, v in names.items()}))
    for image in (ct, labels, activity):
        _stamp(image, provenance)
    return Phantom(ct, labels, names, activity, lesions, provenance)


# ----------------------------------------------------------------------------------------------
# Public API


def make_torso(
    size: int | Sequence[int] = 128,
    spacing_mm: float | Sequence[float] = 4.8,
    *,
    seed: int,
    tracer: str = "PSMA",
    salivary_glands: bool = False,
    n_lesions: int = 4,
    lesion_diameter_mm: tuple[float, float] = (10.0, 50.0),
    total_activity_MBq: float = 3000.0,
    heterogeneity: float = 0.15,
    deformation_mm: float = 8.0,
    progress: ProgressCallback | None = None,
) -> Phantom:
    """Generate a synthetic torso with CT, labelmap and 177Lu activity concentration.

    ``size`` (voxels) and ``spacing_mm`` (mm) are one value or (x, y, z); the field of view must
    hold the phantom: about 500 x 360 x 610 mm (x, y, z), or 760 mm along z with
    ``salivary_glands`` (parotid and submandibular glands in a neck/lower-head extension).
    ``tracer`` is "PSMA" (177Lu-PSMA-617/I&T) or "DOTATATE"; organ uptakes are sampled from
    :data:`UPTAKE_RANGES`, ``n_lesions`` lesions of ``lesion_diameter_mm`` diameter are placed in
    liver, bone and lymph nodes with the tracer's :data:`LESION_SITES` odds. ``heterogeneity`` is
    the std of the log of a smooth (25 mm) multiplicative pattern on every uptake;
    ``deformation_mm`` the std of a smooth (120 mm) random displacement of the anatomy. The
    activity image sums to ``total_activity_MBq`` (activity in the field of view at the imaging
    time, MBq). Organ sizes and positions vary with ``seed``; the same seed gives identical images.

    Returns a :class:`Phantom` whose images have shape (z, y, x) = ``size[::-1]``, the given
    spacing, identity direction and the image centre at (0, 0, 0) mm.
    """
    report = progress or no_progress
    seed = check_seed(seed)
    size3 = _check_size(size)
    spacing3 = check_spacing(spacing_mm)
    tracer = _check_tracer(tracer)
    if isinstance(n_lesions, bool) or not isinstance(n_lesions, int | np.integer) or not 0 <= n_lesions <= _MAX_LESIONS:
        raise ValueError(f"n_lesions: expected an integer in [0, {_MAX_LESIONS}], got {n_lesions!r}")
    diameters = check_range(lesion_diameter_mm, "lesion_diameter_mm")
    total = check_positive(total_activity_MBq, "total_activity_MBq")
    heterogeneity = check_positive(heterogeneity, "heterogeneity", allow_zero=True)
    deformation_mm = check_positive(deformation_mm, "deformation_mm", allow_zero=True)
    s_centre = _torso_window(size3, spacing3, bool(salivary_glands))
    shape, spacing = size3[::-1], spacing3[::-1]

    rng = np.random.default_rng(seed)
    girth, fat_mm = float(rng.uniform(0.97, 1.05)), float(rng.uniform(8.0, 35.0))
    report(0.0, "Deforming the anatomy")
    space = _anatomical_space(rng, shape, spacing, s_centre, deformation_mm)
    report(0.2, "Painting organs")
    body, lean, cavity = _body_masks(space, girth, fat_mm)
    labels = body.astype(np.uint8)
    _organs(rng, space, labels, cavity, girth, bool(salivary_glands))
    report(0.6, "Placing lesions")
    lesion_index, lesions = _lesions(rng, space, labels, cavity, spacing, int(n_lesions), diameters, tracer)
    report(0.75, "CT and activity")
    ct = _ct(labels, lean, space.rough)
    uptake = {name: _log_uniform(rng, *UPTAKE_RANGES[tracer][group]) for name, group in _UPTAKE_GROUP.items()}
    relative = _relative_uptake(labels, uptake, lesion_index, lesions)
    relative *= np.exp(heterogeneity * _smooth_noise(rng, shape, spacing, 25.0))
    activity = _scale_to_total(relative, total, float(np.prod(spacing)) / 1000.0)
    names = _present_names(labels)

    parameters = {
        "size": size3,
        "spacing_mm": spacing3,
        "tracer": tracer,
        "salivary_glands": bool(salivary_glands),
        "n_lesions": int(n_lesions),
        "lesion_diameter_mm": diameters,
        "total_activity_MBq": total,
        "heterogeneity": heterogeneity,
        "deformation_mm": deformation_mm,
    }
    provenance = _provenance(
        "make_torso",
        seed,
        parameters,
        girth_scale=girth,
        fat_thickness_mm=fat_mm,
        relative_uptake={name: value for name, value in uptake.items() if name in names.values()},
        lesions=[asdict(lesion) for lesion in lesions],
    )
    origin = [-(n - 1) / 2.0 * d for n, d in zip(size3, spacing3, strict=True)]
    images = [image_from_array(a, spacing=spacing3, origin=origin) for a in (ct, labels, activity)]
    report(1.0, "Phantom ready")
    return _phantom(*images, lesions, provenance)


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
    return _stamp(image, provenance)


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
