"""Voxel S-value kernels (voxel dose kernels) for 177Lu in soft tissue, in mGy/(MBq*s), at any voxel size.

A kernel value K[d] is the mean absorbed dose rate (mGy/s) in the voxel at offset d (z, y, x) from a source
voxel holding 1 MBq uniformly, in an infinite homogeneous medium of ICRU-44 soft tissue (composition of
:data:`DosimetryCore.physics.tissue.MATERIALS`) at 1.04 g/cm^3, the kernel density of Li et al. (their VDK dose
is multiplied by 1.04 g/cm^3 and divided by the local CT density). Two parts, as in Li et al.:

- beta (default 9^3 voxels): the decay electrons (beta spectrum + conversion + Auger electrons,
  0.1479 MeV/decay for 177Lu), from the density-scaled point kernel of :mod:`DosimetryCore.dose.electrons`
  integrated over the source and target voxels. For voxels much larger than the beta range nearly all of it
  sits in the centre voxel (4.8 mm: ~93 %); at 1 mm about 29 % moves into neighbours.
- photon (default 99^3 voxels): gamma and X-ray lines >= 10 keV by the Monte Carlo engine of
  :mod:`DosimetryCore.dose.montecarlo` (uniform source in the centre voxel, medium extending beyond the
  kernel so that backscatter from outside is included), plus the photon lines below 10 keV deposited in the
  source voxel. Made symmetric under the grid's reflections and axis exchanges, which is exact here and
  cuts the noise.

Kernels are stored with their parameters (photon part as one octant, float32, compressed; a JSON record with
voxel size, histories, seed, engine and electron-model versions and nuclide data source) and reused when the
same parameters are asked for again: the shipped ones in ``Resources/Kernels`` (read only), generated ones in
the per-user cache (:mod:`DosimetryCore.dose.cache`).
"""

from __future__ import annotations

import datetime
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from ..core.constants import BQ_PER_MBQ, G_PER_KG, J_PER_MEV, MGY_PER_GY, MM_PER_CM
from ..core.device import resolve_device
from ..core.metadata import PROVENANCE_KEY
from ..core.progress import ProgressCallback, no_progress
from ..core.volume import set_unit
from ..physics.nuclides import load_nuclide
from . import cache
from .directions import isotropic_directions
from .electrons import (
    DEFAULT_ELECTRONS,
    ELECTRON_MODEL_VERSION,
    ELECTRON_SEED,
    beta_point_kernel,
    beta_voxel_fractions,
    symmetrize,
)
from .montecarlo import (
    ENGINE_VERSION,
    PHOTON_CUTOFF_MEV,
    PhotonCrossSections,
    PhotonLines,
    homogeneous_medium,
    transport_photons,
)

KERNEL_UNIT = "mGy/(MBq*s)"
KERNEL_MATERIAL = "soft_tissue"
# Seed 002 (Li et al.): soft-tissue kernels, VDK dose scaled by 1.04 g/cm^3 / local density.
KERNEL_DENSITY_G_PER_CM3 = 1.04

DEFAULT_BETA_SIZE = 9
DEFAULT_PHOTON_SIZE = 99
DEFAULT_PHOTON_HISTORIES = 10_000_000
DEFAULT_BATCHES = 10
DEFAULT_SEED = 177
BETA_SAMPLES = 4_000_000
MIN_VOXEL_MM = 0.1
MAX_VOXEL_MM = 100.0
"""Voxel sizes (mm) a kernel is made for: outside, the 9^3 beta or 99^3 photon grid cannot hold the dose."""
MAX_BETA_OUTSIDE_FRACTION = 0.01
"""A beta kernel that loses more of the electron energy beyond its edge is refused (use a larger beta size)."""
PHOTON_HISTORIES_PER_SECOND = 1.5e5
"""Photon histories per second of kernel generation on 2 CPU cores (measured: 1e7 in 42-96 s), for the
expected-time message."""

Size = int | tuple[int, int, int]


@dataclass(frozen=True)
class VoxelKernel:
    """Beta and photon voxel S-value kernels of one voxel size, in mGy/(MBq*s).

    Attributes:
        beta: float32 array (kz, ky, kx), odd sizes, source voxel at the centre.
        photon: float32 array (pz, py, px), odd sizes, source voxel at the centre.
        spacing_mm: voxel size (z, y, x) in mm.
        provenance: JSON-serialisable record of how the kernel was made.
    """

    beta: np.ndarray
    photon: np.ndarray
    spacing_mm: tuple[float, float, float]
    provenance: dict[str, Any]

    def total(self) -> np.ndarray:
        """Beta + photon kernel on the larger of the two grids (per axis), float32, centred."""
        shape = tuple(max(a, b) for a, b in zip(self.beta.shape, self.photon.shape, strict=True))
        return _centred(self.photon, shape) + _centred(self.beta, shape)


def _centred(kernel: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    padding = [((n - k) // 2, (n - k) // 2) for k, n in zip(kernel.shape, shape, strict=True)]
    return np.pad(kernel, padding)


def _sizes(size: Size, name: str) -> tuple[int, int, int]:
    sizes = (size,) * 3 if isinstance(size, int) else tuple(int(s) for s in size)
    if len(sizes) != 3 or any(s < 1 or s % 2 == 0 for s in sizes):
        raise ValueError(f"{name}: expected one or three odd positive sizes (z, y, x), got {size!r}")
    return sizes


def _spacing(spacing_mm) -> tuple[float, float, float]:
    values = tuple(float(s) for s in np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)))
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing_mm: expected positive voxel sizes in mm (z, y, x), got {spacing_mm!r}")
    if not all(MIN_VOXEL_MM <= s <= MAX_VOXEL_MM for s in values):
        raise ValueError(
            f"spacing_mm: voxel sizes {values} mm are outside {MIN_VOXEL_MM:g}-{MAX_VOXEL_MM:g} mm, where a kernel "
            "can hold the dose (is the spacing in mm?)"
        )
    return values


def mGy_per_MBq_s_per_MeV(spacing_mm: tuple[float, float, float], density_g_per_cm3: float) -> float:
    """Dose rate (mGy/s) in one voxel from 1 MeV deposited per decay at 1 MBq."""
    mass_kg = density_g_per_cm3 * math.prod(spacing_mm) / MM_PER_CM**3 / G_PER_KG
    return J_PER_MEV * BQ_PER_MBQ * MGY_PER_GY / mass_kg


def beta_kernel(
    spacing_mm: tuple[float, float, float],
    size: Size = DEFAULT_BETA_SIZE,
    *,
    nuclide: str = "Lu-177",
    seed: int = DEFAULT_SEED,
    device: str | torch.device | None = "cpu",
) -> tuple[np.ndarray, float]:
    """Beta (decay-electron) kernel in mGy/(MBq*s) and the fraction of electron energy falling outside it.

    Uses the cached radial point kernel of :func:`DosimetryCore.dose.electrons.beta_point_kernel`; ``seed``
    drives the integration over the source and target voxels.

    Args:
        spacing_mm: voxel size (z, y, x) in mm.
        size: kernel size, one odd number or three (z, y, x).
    Returns:
        (float64 array of shape ``size``, fraction of the electron energy deposited beyond the kernel).
    """
    spacing, sizes = _spacing(spacing_mm), _sizes(size, "beta_size")
    data = load_nuclide(nuclide)
    fractions = beta_voxel_fractions(
        beta_point_kernel(data.name),
        spacing,
        KERNEL_DENSITY_G_PER_CM3,
        sizes,
        samples=BETA_SAMPLES,
        seed=seed,
        device=device,
    )
    electron_MeV = data.mean_energy_per_decay_MeV("beta") + data.mean_energy_per_decay_MeV("electron")
    scale = electron_MeV * mGy_per_MBq_s_per_MeV(spacing, KERNEL_DENSITY_G_PER_CM3)
    return fractions * scale, max(0.0, float(1.0 - fractions.sum()))


def photon_kernel(
    spacing_mm: tuple[float, float, float],
    size: Size = DEFAULT_PHOTON_SIZE,
    *,
    nuclide: str = "Lu-177",
    photon_histories: int = DEFAULT_PHOTON_HISTORIES,
    batches: int = DEFAULT_BATCHES,
    seed: int = DEFAULT_SEED,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Photon kernel in mGy/(MBq*s) by Monte Carlo, with its statistics.

    Args:
        spacing_mm: voxel size (z, y, x) in mm.
        size: kernel size, one odd number or three (z, y, x).
        photon_histories: photon histories in total (rounded up to a multiple of ``batches``).
    Returns:
        (float64 array of shape ``size``, summary: relative standard errors of the centre voxel (which includes
        the photon lines below the cut-off, deposited there) and of the transported part's sum, and the fraction
        of the transported photon energy absorbed inside the kernel).
    """
    spacing, sizes = _spacing(spacing_mm), _sizes(size, "photon_size")
    device = resolve_device(device)
    progress = progress or no_progress
    data = load_nuclide(nuclide)
    lines = PhotonLines.of(data, PHOTON_CUTOFF_MEV)
    medium = homogeneous_medium(sizes, spacing, KERNEL_MATERIAL, KERNEL_DENSITY_G_PER_CM3, infinite=True, device=device)
    cross_sections = PhotonCrossSections(medium.materials, PHOTON_CUTOFF_MEV, float(lines.energies_MeV.max()), device)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    per_batch = -(-int(photon_histories) // batches)
    centre_cm = torch.as_tensor([(n - 1) // 2 for n in sizes], dtype=torch.float32, device=device)
    spacing_cm = torch.as_tensor(spacing, dtype=torch.float32, device=device) / MM_PER_CM
    estimates = []
    for batch in range(batches):
        position = (centre_cm + torch.rand((per_batch, 3), generator=generator, device=device)) * spacing_cm
        energy = lines.sample(per_batch, generator, device)
        tally = transport_photons(
            medium,
            position,
            isotropic_directions(per_batch, generator, device),
            energy,
            generator,
            cross_sections=cross_sections,
        )
        emitted = float(energy.double().sum())
        estimates.append(symmetrize(tally.deposited_MeV.reshape(sizes).cpu().numpy() / emitted, spacing))
        progress((batch + 1) / batches, f"photon kernel batch {batch + 1}/{batches}")
    stack = np.stack(estimates)  # fraction of transported photon energy per voxel, per batch
    mean = stack.mean(axis=0)
    sem = stack.std(axis=0, ddof=1) / math.sqrt(batches)
    centre = tuple((n - 1) // 2 for n in sizes)
    photon_MeV = float(np.sum(lines.energies_MeV * lines.yields))
    scale = mGy_per_MBq_s_per_MeV(spacing, KERNEL_DENSITY_G_PER_CM3)
    kernel = mean * photon_MeV * scale
    kernel[centre] += lines.local_MeV_per_decay * scale
    sums = stack.sum(axis=(1, 2, 3))
    summary = {
        "relative_uncertainty_centre": float(sem[centre] * photon_MeV * scale / kernel[centre]),
        "relative_uncertainty_sum": float(sums.std(ddof=1) / math.sqrt(batches) / sums.mean()),
        "absorbed_fraction_in_kernel": float(sums.mean()),
        "histories": per_batch * batches,
    }
    return kernel, summary


def generate_kernel(
    spacing_mm: tuple[float, float, float],
    *,
    nuclide: str = "Lu-177",
    beta_size: Size = DEFAULT_BETA_SIZE,
    photon_size: Size = DEFAULT_PHOTON_SIZE,
    photon_histories: int = DEFAULT_PHOTON_HISTORIES,
    batches: int = DEFAULT_BATCHES,
    seed: int = DEFAULT_SEED,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> VoxelKernel:
    """Generate beta and photon kernels (no cache; see :func:`voxel_kernel`). Arguments as there."""
    started = time.perf_counter()
    parameters = _parameters(spacing_mm, nuclide, beta_size, photon_size, photon_histories, batches, seed)
    spacing = tuple(parameters["spacing_mm"])
    beta, beta_outside = beta_kernel(spacing, parameters["beta_size"], nuclide=nuclide, seed=seed)
    if beta_outside > MAX_BETA_OUTSIDE_FRACTION:
        raise ValueError(
            f"beta_size: a {parameters['beta_size']} voxel beta kernel of {spacing} mm voxels loses "
            f"{100 * beta_outside:.0f} % of the electron energy beyond its edge; use larger voxels or a larger "
            "beta size"
        )
    photon, photon_summary = photon_kernel(
        spacing,
        parameters["photon_size"],
        nuclide=nuclide,
        photon_histories=photon_histories,
        batches=batches,
        seed=seed,
        device=device,
        progress=progress,
    )
    radial = beta_point_kernel(nuclide)
    provenance = {
        "parameters": parameters,
        "unit": KERNEL_UNIT,
        "medium": f"ICRU-44 soft tissue at {KERNEL_DENSITY_G_PER_CM3} g/cm^3 (the kernel density of Li et al.), "
        "infinite",
        "beta": {
            "model": "CSDA condensed-history walk with screened-Rutherford multiple scattering in water, "
            f"density-scaled (DosimetryCore.dose.electrons, model {ELECTRON_MODEL_VERSION})",
            "x50_mm_at_kernel_density": radial.radius_g_per_cm2(0.5) / KERNEL_DENSITY_G_PER_CM3 * MM_PER_CM,
            "x90_mm_at_kernel_density": radial.radius_g_per_cm2(0.9) / KERNEL_DENSITY_G_PER_CM3 * MM_PER_CM,
            "fraction_outside_kernel": beta_outside,
        },
        "photon": photon_summary,
        "engine": f"DosimetryCore.dose.montecarlo {ENGINE_VERSION}",
        "device": str(resolve_device(device)),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return VoxelKernel(beta.astype(np.float32), photon.astype(np.float32), spacing, provenance)


def _parameters(spacing_mm, nuclide, beta_size, photon_size, photon_histories, batches, seed) -> dict[str, Any]:
    data = load_nuclide(nuclide)
    if int(batches) < 2 or int(photon_histories) < int(batches):
        raise ValueError(
            f"photon_histories, batches: need >= 2 batches and >= 1 history each, got {photon_histories}, {batches}"
        )
    return {
        "kind": "voxel S-value kernel",
        "nuclide": data.name,
        "nuclide_source": data.source,
        "spacing_mm": [round(s, 4) for s in _spacing(spacing_mm)],
        "beta_size": list(_sizes(beta_size, "beta_size")),
        "photon_size": list(_sizes(photon_size, "photon_size")),
        "photon_histories": int(photon_histories),
        "batches": int(batches),
        "seed": int(seed),
        "photon_cutoff_MeV": PHOTON_CUTOFF_MEV,
        "material": KERNEL_MATERIAL,
        "density_g_per_cm3": KERNEL_DENSITY_G_PER_CM3,
        "engine_version": ENGINE_VERSION,
        "electron_model_version": ELECTRON_MODEL_VERSION,
        "electrons": DEFAULT_ELECTRONS,
        "electron_seed": ELECTRON_SEED,
    }


def voxel_kernel(
    spacing_mm: tuple[float, float, float],
    *,
    nuclide: str = "Lu-177",
    beta_size: Size = DEFAULT_BETA_SIZE,
    photon_size: Size = DEFAULT_PHOTON_SIZE,
    photon_histories: int = DEFAULT_PHOTON_HISTORIES,
    batches: int = DEFAULT_BATCHES,
    seed: int = DEFAULT_SEED,
    cache_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> VoxelKernel:
    """The kernel for ``spacing_mm`` (z, y, x, mm), from the cache when made with the same parameters, else
    generated and cached (in ``cache_dir``, default the per-user cache; a warning if it is not writable).

    Args:
        spacing_mm: voxel size (z, y, x) in mm, or one number for isotropic voxels.
        nuclide: nuclide name.
        beta_size, photon_size: odd kernel sizes in voxels, one number or (z, y, x) (Li et al.: 9 and 99).
        photon_histories, batches, seed: Monte Carlo settings of the photon part.
        cache_dir: cache folder.
        device: torch device for generation.
        progress: ``progress(fraction, message)`` callback.
    """
    parameters = _parameters(spacing_mm, nuclide, beta_size, photon_size, photon_histories, batches, seed)
    z, y, x = parameters["spacing_mm"]
    stem = cache.entry_stem(f"{parameters['nuclide']}_kernel_{x:g}x{y:g}x{z:g}mm", parameters)
    stored = cache.load(stem, parameters, cache_dir)
    if stored is not None:
        arrays, record = stored
        record = dict(record, cache_file=f"{stem}.npz")
        return VoxelKernel(
            arrays["beta"], _unfold_octant(arrays["photon_octant"]), tuple(parameters["spacing_mm"]), record
        )
    seconds = parameters["photon_histories"] / PHOTON_HISTORIES_PER_SECOND
    (progress or no_progress)(
        0.0,
        f"no stored kernel for {x:g} x {y:g} x {z:g} mm voxels: generating it (about {max(1, round(seconds / 60))} "
        "min on 2 CPU cores; kept for next time)",
    )
    kernel = generate_kernel(
        parameters["spacing_mm"],
        nuclide=nuclide,
        beta_size=beta_size,
        photon_size=photon_size,
        photon_histories=photon_histories,
        batches=batches,
        seed=seed,
        device=device,
        progress=progress,
    )
    arrays = {"beta": kernel.beta, "photon_octant": _octant(kernel.photon)}
    path = cache.save(stem, arrays, kernel.provenance, cache_dir)
    provenance = dict(kernel.provenance, cache_file=path.name if path else None)
    return VoxelKernel(kernel.beta, kernel.photon, kernel.spacing_mm, provenance)


def _octant(kernel: np.ndarray) -> np.ndarray:
    """The part of a reflection-symmetric centred kernel with non-negative offsets."""
    hz, hy, hx = (n // 2 for n in kernel.shape)
    return kernel[hz:, hy:, hx:]


def _unfold_octant(octant: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_octant`: mirror the octant across each axis."""
    full = octant.astype(np.float32)
    for axis in range(3):
        mirrored = np.flip(np.take(full, range(1, full.shape[axis]), axis=axis), axis=axis)
        full = np.concatenate((mirrored, full), axis=axis)
    return full


def kernel_image(kernel: VoxelKernel, part: str = "total") -> sitk.Image:
    """A kernel part (``"total"``, ``"beta"`` or ``"photon"``) as a SimpleITK image in mGy/(MBq*s).

    The centre voxel sits at the origin (0, 0, 0) mm, identity direction; the provenance is stored as JSON
    under the metadata key ``deepdosimetry.provenance``.
    """
    arrays = {"total": kernel.total, "beta": lambda: kernel.beta, "photon": lambda: kernel.photon}
    if part not in arrays:
        raise ValueError(f"part: {part!r} is not one of {', '.join(arrays)}")
    values = np.ascontiguousarray(arrays[part](), dtype=np.float32)
    image = sitk.GetImageFromArray(values)
    spacing_xyz = tuple(reversed(kernel.spacing_mm))
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(tuple(-(n // 2) * s for n, s in zip(reversed(values.shape), spacing_xyz, strict=True)))
    set_unit(image, KERNEL_UNIT, f"voxel S-value kernel ({part})")
    image.SetMetaData(PROVENANCE_KEY, json.dumps(kernel.provenance, sort_keys=True))
    return image
