"""One DoseRateCNN training case, as Li et al. made theirs: a virtual patient, the Monte Carlo dose rate of its
TRUE activity (the label), its SPECT at the paper's four count levels, and the VDK dose rate of each SPECT.

Per case (all arrays (z, y, x) on the dose grid, float32):

- ``activity`` (true, Bq/mL), ``hu`` (CT), ``density`` (g/cm^3, Li et al.'s calibration), ``labels`` (organs);
- ``mc`` (Gy/h): the label, Monte Carlo of the true activity with the electron point kernel;
- ``spect_<i>`` (Bq/mL): OSEM-RR (16 x 4) of the SPECT at count level i, simulated on the SPECT grid
  (4.8 mm, as clinics reconstruct) and resampled onto the dose grid with the total activity kept;
- ``vdk_<i>`` (Gy/h): the VDK dose rate of ``spect_<i>`` with Li et al.'s whole-kernel density scaling (the
  network's residual baseline);
- ``mcspect_<i>`` (Gy/h), only with ``mc_on_spect``: the Monte Carlo dose rate of ``spect_<i>`` (the paper's
  second reference method; held-out sets only), with the label's histories.

The virtual patients vary per case: tracer (PSMA or DOTATATE), organ uptakes, shapes, deformation, 2 to 6
lesions of 10 to 50 mm (liver, bone, lymph nodes) and, in most cases, one at the lung's edge, and the
administered activity in the field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.validation import check_seed
from DosimetryCore.core.volume import array_from_image, image_from_array, resample_to, set_unit, with_total_of
from DosimetryCore.dose import compute_dose_rate
from DosimetryCore.imaging.count_levels import (
    PAPER_COUNT_LEVELS,
    PAPER_ITERATIONS,
    PAPER_SUBSETS,
    spect_at_count_levels,
)
from DosimetryCore.imaging.simulation import Acquisition
from DosimetryCore.phantoms import add_lung_lesion, make_torso
from DosimetryCore.physics.tissue import density_g_per_cm3_from_hu

TORSO_FIELD_MM = (500.0, 360.0, 610.0)
"""Field of view (x, y, z) in mm that holds the synthetic torso."""
TRACERS = ("PSMA", "DOTATATE")


@dataclass(frozen=True)
class DoseCaseSettings:
    """How the cases of a dataset are made (recorded in its manifest).

    Attributes:
        dose_spacing_mm: voxel size of the dose grid (network inputs and labels), isotropic.
        spect_spacing_mm: voxel size of the simulated SPECT (its reconstruction grid).
        count_levels: total counts of the SPECT noise levels.
        iterations, subsets: OSEM-RR settings.
        views: SPECT views.
        photon_histories, batches: Monte Carlo settings of the label.
        mc_on_spect: also compute the Monte Carlo dose rate of each SPECT (for held-out evaluation).
        lesions: range of the number of lesions; lesion_diameter_mm: their diameters.
        total_activity_MBq: range of the activity in the field of view at imaging time.
        lung_lesion_probability: chance that a case also has a lesion at the lung's edge
            (:func:`DosimetryCore.phantoms.add_lung_lesion`).
    """

    dose_spacing_mm: float = 4.8
    spect_spacing_mm: float = 4.8
    count_levels: tuple[float, ...] = PAPER_COUNT_LEVELS
    iterations: int = PAPER_ITERATIONS
    subsets: int = PAPER_SUBSETS
    views: int = 120
    photon_histories: int = 400_000
    batches: int = 10
    mc_on_spect: bool = False
    lesions: tuple[int, int] = (2, 6)
    lesion_diameter_mm: tuple[float, float] = (10.0, 50.0)
    total_activity_MBq: tuple[float, float] = (1000.0, 7000.0)
    lung_lesion_probability: float = 0.6


def torso_grid_size(spacing_mm: float) -> tuple[int, int, int]:
    """Voxels (x, y, z) that hold the torso at ``spacing_mm``."""
    return tuple(int(math.ceil(field / spacing_mm)) for field in TORSO_FIELD_MM)


def _centred_grid(spacing_mm: float) -> sitk.Image:
    """An empty image holding the torso at ``spacing_mm``, centred on (0, 0, 0) mm like the phantoms."""
    size = torso_grid_size(spacing_mm)
    grid = sitk.Image(list(size), sitk.sitkFloat32)
    grid.SetSpacing((spacing_mm,) * 3)
    grid.SetOrigin(tuple(-(n - 1) / 2.0 * spacing_mm for n in size))
    return grid


def case_image(array: np.ndarray, spacing_mm: float, unit: str, quantity: str) -> sitk.Image:
    """An array (z, y, x) of a case as an image of its dose grid (isotropic ``spacing_mm``, centred on (0, 0, 0)
    mm like the phantoms), with its unit."""
    origin = [-(n - 1) / 2.0 * spacing_mm for n in array.shape[::-1]]
    image = image_from_array(np.ascontiguousarray(array), spacing=(spacing_mm,) * 3, origin=origin)
    return set_unit(image, unit, quantity)


def _onto(image: sitk.Image, reference: sitk.Image, keep_total: bool) -> sitk.Image:
    """``image`` resampled linearly onto ``reference``'s grid; with ``keep_total`` the activity (sum of
    concentration x voxel volume) of the field is kept."""
    moved = resample_to(sitk.Cast(image, sitk.sitkFloat32), reference, "linear", default_value=0.0)
    return with_total_of(moved, image) if keep_total else moved


def _mean_uncertainty(dose: np.ndarray, relative: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Relative standard error (fraction) of each label's mean dose rate from the per-voxel ones, voxels taken
    as independent."""
    result = {}
    for label in np.unique(labels[labels > 0]):
        inside = labels == label
        total = float(dose[inside].sum(dtype=np.float64))
        spread = float(np.sqrt(np.sum((dose[inside].astype(np.float64) * relative[inside]) ** 2)))
        result[int(label)] = spread / total if total > 0 else 0.0
    return result


def simulate_dose_case(
    seed: int,
    settings: DoseCaseSettings | None = None,
    *,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Simulate one training case (see the module docstring).

    Args:
        seed: case seed: phantom, uptakes, lesions, activity, SPECT noise and Monte Carlo all follow from it.
        settings: how the case is made (default :class:`DoseCaseSettings`).
        device: torch device for the projectors and the Monte Carlo.
    Returns:
        (arrays by name, record): the arrays of the module docstring, and a JSON-serialisable record (seed,
        settings, sampled values, spacing, label names, Monte Carlo uncertainty of each organ's mean).
    """
    seed = check_seed(seed)
    settings = settings or DoseCaseSettings()
    report = progress or no_progress
    rng = np.random.default_rng(seed)
    sampled = {
        "tracer": str(rng.choice(TRACERS)),
        "n_lesions": int(rng.integers(settings.lesions[0], settings.lesions[1] + 1)),
        "total_activity_MBq": float(rng.uniform(*settings.total_activity_MBq)),
    }
    children = np.random.SeedSequence(seed).spawn(4)
    phantom_seed, spect_seed, mc_seed, lung_seed = (int(child.generate_state(1)[0]) for child in children)
    sampled["lung_lesion"] = bool(rng.random() < settings.lung_lesion_probability)
    report(0.0, "virtual patient")
    phantom = make_torso(
        torso_grid_size(settings.dose_spacing_mm),
        settings.dose_spacing_mm,
        seed=phantom_seed,
        tracer=sampled["tracer"],
        n_lesions=sampled["n_lesions"],
        lesion_diameter_mm=settings.lesion_diameter_mm,
        total_activity_MBq=sampled["total_activity_MBq"],
    )
    if sampled["lung_lesion"]:
        phantom = add_lung_lesion(phantom, np.random.default_rng(lung_seed), settings.lesion_diameter_mm)
    spect_grid = _centred_grid(settings.spect_spacing_mm)
    activity_spect = _onto(phantom.activity, spect_grid, keep_total=True)
    ct_spect = _onto(phantom.ct, spect_grid, keep_total=False)
    acquisition = Acquisition(views=settings.views)
    spects = spect_at_count_levels(
        set_unit(activity_spect, "Bq/mL", "activity concentration"),
        set_unit(ct_spect, "HU", "CT number"),
        settings.count_levels,
        acquisition,
        iterations=settings.iterations,
        subsets=settings.subsets,
        seed=spect_seed,
        device=device,
        progress=sub_progress(report, 0.05, 0.6),
    )
    report(0.6, "Monte Carlo label")
    label = compute_dose_rate(
        phantom.activity, phantom.ct, "mc", photon_histories=settings.photon_histories, batches=settings.batches,
        seed=mc_seed, device=device, progress=sub_progress(report, 0.6, 0.9),
    )  # fmt: skip
    hu = array_from_image(phantom.ct).astype(np.float32)
    labels = array_from_image(phantom.labels)
    arrays = {
        "activity": array_from_image(phantom.activity).astype(np.float32),
        "hu": hu,
        "density": np.asarray(density_g_per_cm3_from_hu(hu), dtype=np.float32),
        "labels": labels,
        "mc": array_from_image(label.image).astype(np.float32),
    }
    for index, spect in enumerate(spects):
        report(0.9 + 0.1 * index / len(spects), f"VDK of count level {index + 1}/{len(spects)}")
        on_dose_grid = set_unit(_onto(spect, phantom.activity, keep_total=True), "Bq/mL", "activity concentration")
        arrays[f"spect_{index}"] = array_from_image(on_dose_grid).astype(np.float32)
        vdk = compute_dose_rate(on_dose_grid, phantom.ct, "vdk", density_scaling="total", device=device)
        arrays[f"vdk_{index}"] = array_from_image(vdk.image).astype(np.float32)
        if settings.mc_on_spect:
            mc_spect = compute_dose_rate(
                on_dose_grid, phantom.ct, "mc", photon_histories=settings.photon_histories, batches=settings.batches,
                seed=(mc_seed + 1 + index) % 2**32, device=device,
            )  # fmt: skip
            arrays[f"mcspect_{index}"] = array_from_image(mc_spect.image).astype(np.float32)
    uncertainty = _mean_uncertainty(arrays["mc"], array_from_image(label.relative_uncertainty), labels)
    record = {
        "seed": seed,
        "settings": asdict(settings),
        "sampled": sampled,
        "seeds": {"phantom": phantom_seed, "spect": spect_seed, "monte_carlo": mc_seed, "lung_lesion": lung_seed},
        "spacing_mm": settings.dose_spacing_mm,
        "shape_zyx": list(hu.shape),
        "label_names": {str(k): v for k, v in phantom.label_names.items()},
        "mc_mean_relative_uncertainty": {phantom.label_names[k]: v for k, v in uncertainty.items()},
    }
    report(1.0, "case done")
    return arrays, record
