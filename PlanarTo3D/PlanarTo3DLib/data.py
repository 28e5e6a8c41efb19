"""Training and evaluation data of PlanarTo3D (Lopez-Montes et al.): activity maps, their anterior/posterior
planar images, and the network's inputs and targets.

Everything lives on the CPU grid :data:`GRID_SHAPE_ZYX` x :data:`GRID_SPACING_MM` (the torso field of the
project's phantoms; the paper used 128 x 128 x 175 voxels of 5.7 mm, which a GPU run can use). Arrays are
(z, y, x), y the antero-posterior axis; planar images (2, z, x): anterior, then posterior mirrored into the
anterior's orientation (:class:`~DosimetryCore.imaging.projection.PlanarProjector`).

Normalisation (count-level and activity independent): planar inputs are counts / (anterior + posterior total)
x :data:`PLANAR_SCALE`, spread along y; the attenuation map is mu (1/cm) x :data:`MU_SCALE`; activity inputs and
targets are concentration / total concentration x :data:`ACTIVITY_SCALE`. The absolute activity comes back from
the measured counts (:mod:`PlanarTo3DLib.reconstruct`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from DosimetryCore.core.volume import array_from_image, image_from_array
from DosimetryCore.imaging.collimators import DetectorResponse, collimator_response
from DosimetryCore.imaging.projection import PlanarProjector, counts_per_Bq_per_mL, poisson_counts
from DosimetryCore.imaging.simulation import Acquisition
from DosimetryCore.physics.tissue import mu_per_cm_from_hu

GRID_SPACING_MM = 9.6
GRID_SHAPE_ZYX = (64, 40, 56)
"""614 x 384 x 538 mm (z, y, x): the torso field at 9.6 mm, each side a multiple of 8 (three poolings)."""
PLANAR_SCALE = 1000.0
MU_SCALE = 5.0
ACTIVITY_SCALE = 10000.0
PET_BLUR_FWHM_MM = 6.0
"""Resolution of the pre-therapy PET in the evaluation's virtual patients (a clinical PET's 4-7 mm)."""


@dataclass(frozen=True)
class PlanarCamera:
    """The planar acquisition simulated (recorded in datasets and model cards)."""

    collimator: str = Acquisition.collimator
    energy_keV: float = Acquisition.energy_keV
    intrinsic_fwhm_mm: float = Acquisition.intrinsic_fwhm_mm
    sensitivity_cps_per_MBq: float = Acquisition.sensitivity_cps_per_MBq
    time_s: float = Acquisition.planar_time_s
    distance_mm: float = Acquisition.planar_distance_mm

    def response(self) -> DetectorResponse:
        return collimator_response(self.collimator, self.energy_keV, self.intrinsic_fwhm_mm)


DEFAULT_CAMERA = PlanarCamera()


def mu_map(hu: np.ndarray, camera: PlanarCamera = DEFAULT_CAMERA) -> np.ndarray:
    """Attenuation coefficients (1/cm) at the camera's photopeak from HU."""
    return mu_per_cm_from_hu(np.asarray(hu, np.float32), camera.energy_keV / 1000.0).astype(np.float32)


def projector(mu: np.ndarray, camera: PlanarCamera = DEFAULT_CAMERA, spacing_mm: float = GRID_SPACING_MM):
    """The planar projector of the grid with the attenuation ``mu`` (1/cm) and the camera's response."""
    return PlanarProjector(mu.shape, (spacing_mm,) * 3, camera.distance_mm, torch.from_numpy(mu), camera.response())


def planar_images(
    activity: np.ndarray,
    mu: np.ndarray,
    camera: PlanarCamera = DEFAULT_CAMERA,
    *,
    total_counts: float | None = None,
    seed: int | None = None,
    spacing_mm: float = GRID_SPACING_MM,
) -> np.ndarray:
    """Anterior/posterior counts (2, z, x) of ``activity`` (Bq/mL): expected counts of the camera, scaled to
    ``total_counts`` (both views together) when given, with Poisson noise when ``seed`` is given."""
    scale = counts_per_Bq_per_mL((spacing_mm,) * 3, camera.sensitivity_cps_per_MBq, camera.time_s)
    expected = projector(mu, camera, spacing_mm).forward(torch.from_numpy(np.asarray(activity, np.float32))) * scale
    if total_counts is not None:
        expected = expected * (total_counts / float(expected.sum()))
    counts = poisson_counts(expected, seed) if seed is not None else expected
    return counts.numpy().astype(np.float32)


def network_input(planar: np.ndarray, mu: np.ndarray, pet: np.ndarray | None = None) -> np.ndarray:
    """Channels (C, z, y, x): anterior and posterior spread along y, the attenuation map, and the PET when given
    (normalised as the module docstring says)."""
    total = float(planar.sum())
    if not total > 0:
        raise ValueError("planar images: hold no counts")
    z, y, x = mu.shape
    spread = np.broadcast_to((planar * (PLANAR_SCALE / total))[:, :, None, :], (2, z, y, x))
    channels = [spread[0], spread[1], mu * MU_SCALE]
    if pet is not None:
        channels.append(activity_share(pet))
    return np.ascontiguousarray(np.stack(channels), dtype=np.float32)


def activity_share(activity: np.ndarray) -> np.ndarray:
    """Concentration / its total x :data:`ACTIVITY_SCALE` (the network's activity unit)."""
    total = float(np.asarray(activity, np.float64).sum())
    if not total > 0:
        raise ValueError("activity: holds no activity")
    return (np.asarray(activity, np.float32) * np.float32(ACTIVITY_SCALE / total)).astype(np.float32)


def _scaled_regions(
    activity: np.ndarray, labels: np.ndarray, rng: np.random.Generator, scale: tuple[float, float]
) -> tuple[dict[int, float], np.ndarray]:
    """Every label's (0 included: the remainder) activity times its own factor U(``scale``), drawn in label order;
    returns (factors, scaled activity)."""
    factors = {int(v): float(rng.uniform(*scale)) for v in np.unique(labels)}
    table = np.zeros(int(labels.max()) + 1, np.float32)
    for value, factor in factors.items():
        table[value] = factor
    return factors, activity * table[labels]


def vary(
    activity: np.ndarray,
    hu: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    uptake_scale: tuple[float, float] = (0.5, 2.0),
    max_rotation_deg: float = 5.0,
    max_translation_mm: float = 20.0,
    spacing_mm: float = GRID_SPACING_MM,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One variation of Lopez-Montes et al.'s patient-specific dataset: every labelled region's (and the
    unlabelled remainder's) uptake times U(``uptake_scale``), then a rotation about each axis U(+-
    ``max_rotation_deg``) and a translation U(+-``max_translation_mm``) (seed 000 states +-20 cm for a 1 m
    whole-body field; 20 mm keeps a torso in this field). Returns (activity, HU, what was drawn)."""
    factors, scaled = _scaled_regions(activity, labels, rng, uptake_scale)
    angles = rng.uniform(-max_rotation_deg, max_rotation_deg, 3)
    translation = rng.uniform(-max_translation_mm, max_translation_mm, 3)
    drawn = {"uptake_factors": factors, "rotation_deg": angles.tolist(), "translation_mm": translation.tolist()}
    moved_activity = move_like(scaled, drawn, 0.0, spacing_mm)
    return np.clip(moved_activity, 0.0, None), move_like(hu, drawn, -1000.0, spacing_mm), drawn


def move_like(values: np.ndarray, drawn: dict, outside: float = 0.0, spacing_mm: float = GRID_SPACING_MM) -> np.ndarray:
    """``values`` (z, y, x) moved by the rotation and translation of a variation (``drawn`` of :func:`vary`), about
    the grid's centre, linear interpolation, ``outside`` beyond the field (e.g. the PET that conditions the
    network moves with the patient's CT)."""
    reference = image_from_array(np.asarray(values, np.float32), spacing=(spacing_mm,) * 3)
    centre = reference.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in reference.GetSize()])
    transform = sitk.Euler3DTransform(centre, *np.deg2rad(drawn["rotation_deg"]), list(drawn["translation_mm"]))
    return array_from_image(sitk.Resample(reference, reference, transform, sitk.sitkLinear, outside))


def pre_therapy_pet(
    activity: np.ndarray, labels: np.ndarray, rng: np.random.Generator, spacing_mm: float = GRID_SPACING_MM
) -> tuple[np.ndarray, dict]:
    """A pre-therapy PET unlike the post-therapy truth, as the evaluation's virtual patients need: every region's
    uptake times U(0.6, 1.6), blurred to :data:`PET_BLUR_FWHM_MM`, another total (x U(0.5, 2))."""
    factors, scaled = _scaled_regions(activity, labels, rng, (0.6, 1.6))
    sigma = PET_BLUR_FWHM_MM / (2.0 * math.sqrt(2.0 * math.log(2.0))) / spacing_mm
    total_factor = float(rng.uniform(0.5, 2.0))
    pet = ndimage.gaussian_filter(scaled, sigma) * total_factor
    return pet.astype(np.float32), {"uptake_factors": factors, "blur_fwhm_mm": PET_BLUR_FWHM_MM,
                                    "total_factor": total_factor}  # fmt: skip
