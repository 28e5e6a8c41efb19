"""Simulated 177Lu imaging of one case: planar ANT/POST, SPECT projections and OSEM reconstructions.

The acquisition defaults follow seed 003 (Leube et al.): Siemens Intevo with medium-energy
low-penetration collimators, 120 views of 30 s, 128 x 128 matrix at about 4.8 mm, 208 keV window;
reconstructions without resolution recovery (noRR: 10 iterations x 2 subsets) and with it
(RR: 6 iterations x 6 subsets), both with attenuation correction, from noise-free and noisy
projections. Scatter is not simulated, so none is corrected.

Images follow :mod:`DosimetryCore.core.volume`: SimpleITK, LPS, axis-aligned grids centred on the
rotation axis. Planar images are 2D (rows, columns): row 0 at the top of the field of view (head),
columns toward the patient's left, the posterior mirrored into the anterior's orientation, as
:func:`DosimetryCore.io.images.read_planar` returns measured ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk
import torch

import DosimetryCore
from DosimetryCore import phantoms
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.metadata import ANGLES_KEY, FRAME_DURATION_KEY
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.provenance import stamp
from DosimetryCore.core.validation import check_finite_nonnegative
from DosimetryCore.core.volume import image_from_array, require_image, require_same_geometry, set_unit
from DosimetryCore.imaging.collimators import LU177_PHOTOPEAK_KEV, collimator_response
from DosimetryCore.imaging.projection import PlanarProjector, SpectProjector, counts_per_Bq_per_mL, poisson_counts
from DosimetryCore.imaging.reconstruction import osem, simulate_spect_projections
from DosimetryCore.physics import tissue

OSEM_IMAGES = ("osem_norr_noise_free", "osem_norr_noisy", "osem_rr_noise_free", "osem_rr_noisy")
"""The OSEM images :func:`simulate_spect` can make: without (noRR) and with (RR) resolution recovery, from
noise-free and from noisy projections (seed 003's noRR_nf, noRR_n, RR_nf, RR_n)."""


def check_reconstructions(reconstructions: Sequence[str]) -> tuple[str, ...]:
    """``reconstructions`` as a tuple in :data:`OSEM_IMAGES` order; ValueError when empty or one is unknown."""
    names = tuple(reconstructions) if not isinstance(reconstructions, str) else (reconstructions,)
    unknown = [name for name in names if name not in OSEM_IMAGES]
    if unknown or not names:
        raise ValueError(f"reconstructions: expected one or more of {', '.join(OSEM_IMAGES)}, got {list(names)}")
    return tuple(name for name in OSEM_IMAGES if name in names)


@dataclass(frozen=True)
class Acquisition:
    """Camera and protocol of a simulated acquisition (lengths in mm, times in s).

    ``sensitivity_cps_per_MBq`` is the planar sensitivity of one head in the 208 keV window; the
    default is of the order reported for medium-energy collimators with 177Lu (about 9-10 cps/MBq)
    and should be set to the camera's calibration when simulating a specific system.
    """

    collimator: str = "SIEMENS-MELP"
    energy_keV: float = LU177_PHOTOPEAK_KEV
    intrinsic_fwhm_mm: float = 3.8
    sensitivity_cps_per_MBq: float = 9.5
    views: int = 120
    time_per_view_s: float = 30.0
    radius_mm: float = 280.0
    planar_time_s: float = 600.0
    planar_distance_mm: float = 250.0
    norr_iterations: int = 10
    norr_subsets: int = 2
    rr_iterations: int = 6
    rr_subsets: int = 6


@dataclass
class SimulatedCase:
    """Every image of one simulated case, keyed by the file stem it is written under."""

    images: dict[str, sitk.Image]
    label_names: dict[int, str]
    provenance: dict = field(default_factory=dict)


def noise_seeds(seed: int) -> tuple[int, int]:
    """Independent Poisson-noise seeds (planar, SPECT) derived from a case seed."""
    planar, spect = np.random.SeedSequence(seed).spawn(2)
    return int(planar.generate_state(1)[0]), int(spect.generate_state(1)[0])


def mu_map(ct: sitk.Image, energy_keV: float = LU177_PHOTOPEAK_KEV) -> sitk.Image:
    """Linear attenuation coefficients (1/cm) at ``energy_keV`` from a CT in HU (same grid)."""
    require_image(ct, "ct")
    mu = tissue.mu_per_cm_from_hu(sitk.GetArrayFromImage(ct), energy_keV / 1000.0).astype(np.float32)
    return set_unit(image_from_array(mu, ct), "1/cm", f"linear attenuation coefficient at {energy_keV:g} keV")


def _projector_grid(image: sitk.Image, name: str) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Shape (z, y, x) and spacing (sz, sy, sx) of an axis-aligned image, else a ValueError."""
    require_image(image, name)
    if not np.allclose(image.GetDirection(), np.eye(3).ravel(), atol=1e-6):
        raise ValueError(f"{name}: the projectors need an axis-aligned (identity direction) grid; resample it first")
    return tuple(reversed(image.GetSize())), tuple(reversed(image.GetSpacing()))


def _activity_tensor(activity: sitk.Image, device: torch.device) -> torch.Tensor:
    values = torch.from_numpy(sitk.GetArrayFromImage(activity).astype(np.float32)).to(device)
    check_finite_nonnegative(values, "activity", "activity concentrations", "Bq/mL")
    return values


def _stamp(image: sitk.Image, provenance: dict) -> sitk.Image:
    return stamp(image, provenance)


def _planar_image(counts: torch.Tensor, spacing_zyx: tuple[float, float, float], view: str) -> sitk.Image:
    """A (z, x) projection as a 2D image with row 0 at the head (z flipped), spacing (sx, sz)."""
    image = sitk.GetImageFromArray(counts.flip(0).cpu().numpy().astype(np.float32))
    image.SetSpacing((spacing_zyx[2], spacing_zyx[0]))
    return set_unit(image, "counts", f"planar {view} counts")


def simulate_planar_images(
    activity: sitk.Image,
    ct: sitk.Image,
    acquisition: Acquisition = Acquisition(),
    *,
    noise: bool = True,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> tuple[sitk.Image, sitk.Image]:
    """Anterior and posterior planar counts images of ``activity`` (Bq/mL) attenuated by ``ct`` (HU).

    Seed 000 eq. 2: attenuated parallel projection with the collimator's depth-dependent Gaussian
    response, times sensitivity and acquisition time, with Poisson noise when ``noise``. Both
    images have the metadata frame duration and provenance; the posterior is mirrored into the
    anterior's left-right orientation.
    """
    shape, spacing = _projector_grid(activity, "activity")
    require_same_geometry(ct, activity, "ct", "activity")
    device = resolve_device(device)
    projector = PlanarProjector(
        shape,
        spacing,
        acquisition.planar_distance_mm,
        torch.from_numpy(sitk.GetArrayFromImage(mu_map(ct, acquisition.energy_keV))).to(device),
        collimator_response(acquisition.collimator, acquisition.energy_keV, acquisition.intrinsic_fwhm_mm),
        device=device,
    )
    scale = counts_per_Bq_per_mL(spacing, acquisition.sensitivity_cps_per_MBq, acquisition.planar_time_s)
    expected = projector.forward(_activity_tensor(activity, device)).mul_(scale)
    counts = poisson_counts(expected, seed) if noise else expected
    provenance = {
        "generator": "simulate_planar_images",
        "deepdosimetry": DosimetryCore.__version__,
        "acquisition": asdict(acquisition),
        "noise": noise,
        "seed": seed,
    }
    views = []
    for index, view in enumerate(("anterior", "posterior")):
        image = _planar_image(counts[index], spacing, view)
        image.SetMetaData(FRAME_DURATION_KEY, f"{acquisition.planar_time_s:g}")
        views.append(_stamp(image, provenance))
    return views[0], views[1]


def _projection_image(projections: torch.Tensor, spacing_zyx: tuple[float, float, float], angles: np.ndarray):
    """SPECT projections (views, z, u) as a 3D image: x = u, y = z, z = view index."""
    image = sitk.GetImageFromArray(projections.cpu().numpy().astype(np.float32))
    image.SetSpacing((spacing_zyx[2], spacing_zyx[0], 1.0))
    image.SetMetaData(ANGLES_KEY, " ".join(f"{a:g}" for a in angles))
    return set_unit(image, "counts", "SPECT projections (view, row, column)")


def spect_projector(
    activity: sitk.Image, ct: sitk.Image, acquisition: Acquisition, device: torch.device
) -> SpectProjector:
    """The SPECT system model of ``acquisition`` on the activity's (axis-aligned) grid, attenuated by the CT
    (HU, same grid) and with the collimator's depth-dependent response."""
    shape, spacing = _projector_grid(activity, "activity")
    require_same_geometry(ct, activity, "ct", "activity")
    mu = torch.from_numpy(sitk.GetArrayFromImage(mu_map(ct, acquisition.energy_keV))).to(device)
    angles = np.arange(acquisition.views) * 360.0 / acquisition.views
    response = collimator_response(acquisition.collimator, acquisition.energy_keV, acquisition.intrinsic_fwhm_mm)
    return SpectProjector(shape, spacing, angles, acquisition.radius_mm, mu, response, device=device)


def simulate_spect(
    activity: sitk.Image,
    ct: sitk.Image,
    acquisition: Acquisition = Acquisition(),
    *,
    seed: int,
    reconstructions: Sequence[str] = OSEM_IMAGES,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, sitk.Image]:
    """SPECT of ``activity`` (Bq/mL) attenuated by ``ct`` (HU): projections and OSEM images.

    Returns ``projections_noise_free`` and ``projections_noisy`` (counts, Poisson noise drawn with
    ``seed``) and the ``reconstructions`` asked for, of :data:`OSEM_IMAGES` (default all four):
    ``osem_norr_noise_free``, ``osem_norr_noisy``, ``osem_rr_noise_free``, ``osem_rr_noisy`` (Bq/mL, on the
    activity grid): OSEM with attenuation correction, without (noRR) and with (RR) the collimator response in
    the system model, with the iterations and subsets of ``acquisition``. An image is the same whichever others
    are asked for (the noise does not depend on them).
    """
    wanted = check_reconstructions(reconstructions)
    report = progress or no_progress
    device = resolve_device(device)
    report(0.0, "SPECT projections")
    projector = spect_projector(activity, ct, acquisition, device)
    spacing, angles = projector.spacing_mm, np.arange(acquisition.views) * 360.0 / acquisition.views
    values = _activity_tensor(activity, device)
    projections = {
        name: simulate_spect_projections(
            values,
            projector,
            sensitivity_cps_per_MBq=acquisition.sensitivity_cps_per_MBq,
            time_per_view_s=acquisition.time_per_view_s,
            noise=noisy,
            seed=seed,
        )
        for name, noisy in (("noise_free", False), ("noisy", True))
    }
    steps = [
        (f"osem_{kind}_{name}", model, iterations, subsets, data)
        for kind, model, iterations, subsets in (
            ("norr", projector.with_response(None), acquisition.norr_iterations, acquisition.norr_subsets),
            ("rr", projector, acquisition.rr_iterations, acquisition.rr_subsets),
        )
        for name, data in projections.items()
        if f"osem_{kind}_{name}" in wanted
    ]
    images = {f"projections_{name}": _projection_image(data, spacing, angles) for name, data in projections.items()}
    for index, (key, model, iterations, subsets, data) in enumerate(steps):
        start = 0.05 + 0.95 * index / len(steps)
        recon = osem(
            data,
            model,
            sensitivity_cps_per_MBq=acquisition.sensitivity_cps_per_MBq,
            time_per_view_s=acquisition.time_per_view_s,
            iterations=iterations,
            subsets=subsets,
            progress=sub_progress(report, start, start + 0.95 / len(steps)),
        )
        recon_image = image_from_array(recon.cpu().numpy().astype(np.float32), activity)
        images[key] = set_unit(recon_image, "Bq/mL", "activity concentration")
    report(1.0, "SPECT done")
    return images


def simulate_case(
    seed: int,
    size: int = 128,
    spacing_mm: float = 4.8,
    tracer: str = "PSMA",
    acquisition: Acquisition = Acquisition(),
    *,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> SimulatedCase:
    """Simulate one case: torso phantom, planar ANT/POST, SPECT projections and four OSEM images.

    Outputs (keys of ``SimulatedCase.images``): ``ct`` (HU), ``labels``, ``activity`` (Bq/mL),
    ``mu`` (1/cm), ``anterior``/``posterior`` (counts, noisy), and the images of
    :func:`simulate_spect`. Every image carries the provenance (seed, noise seeds, acquisition,
    version) under :data:`PROVENANCE_KEY`. Deterministic for a given seed and device.
    """
    report = progress or no_progress
    device = resolve_device(device)
    planar_seed, spect_seed = noise_seeds(seed)
    phantom = phantoms.make_torso(size, spacing_mm, seed=seed, tracer=tracer, progress=sub_progress(report, 0, 0.05))
    report(0.05, "Planar anterior/posterior")
    anterior, posterior = simulate_planar_images(
        phantom.activity, phantom.ct, acquisition, noise=True, seed=planar_seed, device=device
    )
    spect = simulate_spect(
        phantom.activity, phantom.ct, acquisition, seed=spect_seed, device=device, progress=sub_progress(report, 0.1, 1)
    )
    provenance = {
        "generator": "simulate_case",
        "deepdosimetry": DosimetryCore.__version__,
        "seed": seed,
        "noise_seeds": {"planar": planar_seed, "spect": spect_seed},
        "size": size,
        "spacing_mm": spacing_mm,
        "tracer": tracer,
        "acquisition": asdict(acquisition),
        "device": device.type,
    }
    images = {
        "ct": phantom.ct,
        "labels": phantom.labels,
        "activity": phantom.activity,
        "mu": mu_map(phantom.ct, acquisition.energy_keV),
        "anterior": anterior,
        "posterior": posterior,
        **spect,
    }
    for image in images.values():
        _stamp(image, provenance)
    report(1.0, "Simulation done")
    return SimulatedCase(images, dict(phantom.label_names), provenance)
