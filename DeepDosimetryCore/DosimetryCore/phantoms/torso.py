"""The synthetic torso (:func:`make_torso`): body, bones, organs, lesions, CT and tracer uptake."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from DosimetryCore import __version__
from DosimetryCore.core.constants import BQ_PER_MBQ
from DosimetryCore.core.metadata import LABEL_NAMES_KEY
from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.core.provenance import stamp
from DosimetryCore.core.validation import check_positive, check_range, check_seed, check_spacing
from DosimetryCore.core.volume import array_from_image, image_from_array, set_unit
from DosimetryCore.phantoms.fields import _check_size, _check_tracer, _ellipsoid, _smooth_noise, _torso_window, _vary
from DosimetryCore.phantoms.tables import (
    _BLADDER,
    _BODY_PROFILE,
    _BODY_WALL_MM,
    _FAT_PROFILE,
    _HEART,
    _KIDNEYS,
    _LIVER,
    _LUNGS,
    _LYMPH_NODE_STATIONS,
    _MAX_LESIONS,
    _MEDULLA_SCALE,
    _PELVIS,
    _RIB_PROFILE,
    _SALIVARY,
    _SPINE_PROFILE,
    _SPLEEN,
    HU,
    LABELS,
    LESION_SITES,
    UPTAKE_RANGES,
    Lesion,
    Phantom,
    _Ellipsoid,
    _Space,
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
        stamp(image, provenance)
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
