"""Monte Carlo photon transport engine (Woodcock tracking, Klein-Nishina, Rayleigh) on CT voxel grids.

Particles are processed as tensors (all photons of a batch at once); Python loops run only over transport
steps, rejection rounds and batches, so the same code runs on CPU and CUDA (``device=``).

Physics and its approximations
------------------------------
- Decays: positions sampled from the activity map (probability proportional to activity x voxel volume,
  uniform inside the voxel); emissions from ICRP Publication 107 (:mod:`DosimetryCore.physics.nuclides`).
- Photons: every gamma and X-ray line at or above ``photon_cutoff_MeV`` (default 10 keV) is transported;
  a history is one photon, drawn from the lines in proportion to their yields and weighted by the total
  yield per decay (0.239 photons per decay for 177Lu above 10 keV). Lines below the cut-off (177Lu: L X-rays,
  0.3 keV per decay; ~1 mm mean free path) are deposited where they are emitted.
- Tracking: Woodcock (delta) tracking through the voxel grid with a majorant cross-section per energy bin
  (max over materials of max density x mass coefficient at the bin's two ends, which bounds the linear
  interpolation used for the real cross-section exactly).
- Materials: voxels are assigned a material class from their CT number (air, lung, adipose, soft tissue,
  bone; :func:`DosimetryCore.physics.tissue.material_index_from_hu`) and a density from the CT calibration
  (:func:`DosimetryCore.physics.tissue.density_g_per_cm3_from_hu`). Mass coefficients for photoelectric absorption,
  incoherent (Compton) and coherent (Rayleigh) scattering come from :mod:`DosimetryCore.physics.tissue` (Elam et al.
  tables via xraydb), on a log-energy grid of 1024 points with linear interpolation.
- Photoelectric absorption: the photon energy is deposited at the interaction point (fluorescence of the
  tissue elements is below 4 keV and is deposited with it).
- Compton scattering: Klein-Nishina, sampled with Kahn's rejection method (H. Kahn, Applications of Monte
  Carlo, AECU-3259, 1954; as given in the MCNP manual). Free-electron scattering: no binding effects or
  Doppler broadening (the incoherent cross-section itself does include binding, from the tables).
- Rayleigh scattering: direction from the Thomson distribution (1 + cos^2 theta)/2, sampled exactly by
  inverting its cumulative (a cubic); the atomic form factor is neglected, which makes coherent scattering
  too wide-angled. It carries 1-7 % of the interactions of 177Lu photons in tissue and deposits no energy.
- Photons whose energy falls below the cut-off deposit it locally and stop.
- Electrons (beta, conversion and Auger electrons; Compton recoil and photo-electrons) are not tracked.
  Electrons set in motion by photons deposit their energy at the interaction point. The decay electrons are
  scored by their expected value: each voxel releases activity x mean electron energy per decay (0.148 MeV
  for 177Lu), which has no sampling noise. With ``electron_transport="kernel"`` (default) this energy is
  spread with the density-scaled beta point kernel of :mod:`DosimetryCore.dose.electrons` (one kernel per
  material class, scaled to the activity-weighted mean density of the class's active voxels; air keeps its
  energy); ``"local"`` keeps it in the voxel (the common choice at ~4.8 mm voxels, where ~93 % of the beta
  energy stays in the source voxel).
- Absorbed dose rate (Gy/h) = energy deposited per second (J/s) / voxel mass (kg) x 3600, with the energy per
  second = energy per decay x decays per second (Bq). Voxels without mass (density 0) get 0.
- Statistical uncertainty: history-batch method; the relative standard error of the mean over ``batches``
  independent batches, per voxel (only the photon part is stochastic).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.constants import MM_PER_CM
from ..core.device import resolve_device
from ..physics.nuclides import Nuclide
from ..physics.tissue import HU_MATERIALS, density_g_per_cm3_from_hu, material_index_from_hu
from .directions import rotate_directions
from .photons import PhotonCrossSections, sample_klein_nishina, sample_rayleigh_cosines

ENGINE_VERSION = "1.0"
"""Version of this Monte Carlo engine; part of the provenance of every result and cached kernel."""

PHOTON_CUTOFF_MEV = 0.010
"""Photons are emitted and followed down to this energy (MeV); below it their energy is deposited locally."""

DEFAULT_PHOTON_HISTORIES = 1_000_000
DEFAULT_BATCHES = 10
DEFAULT_SEED = 177
ELECTRON_TRANSPORT_MODES = ("kernel", "local")



@dataclass(frozen=True)
class Medium:
    """A voxelised transport medium.

    Attributes:
        density_g_per_cm3: mass density per voxel, float32 tensor of shape (z, y, x), >= 0 (0: vacuum).
        material_index: index into ``materials`` per voxel, int64 tensor of shape (z, y, x).
        spacing_mm: voxel size (z, y, x) in mm. Voxel (0, 0, 0) spans [0, spacing) on every axis.
        materials: names of :data:`DosimetryCore.physics.tissue.MATERIALS` the indices refer to.
        surrounding: ``(material index, density)`` of an infinite homogeneous medium around the grid, or None
            for vacuum (photons leaving the grid escape).
    """

    density_g_per_cm3: torch.Tensor
    material_index: torch.Tensor
    spacing_mm: tuple[float, float, float]
    materials: tuple[str, ...] = HU_MATERIALS
    surrounding: tuple[int, float] | None = None

    def __post_init__(self) -> None:
        density, material = self.density_g_per_cm3, self.material_index
        if density.ndim != 3 or tuple(density.shape) != tuple(material.shape):
            raise ValueError(
                f"medium: density {tuple(density.shape)} and material {tuple(material.shape)} must be equal 3D shapes"
            )
        if len(self.spacing_mm) != 3 or min(self.spacing_mm) <= 0:
            raise ValueError(f"spacing_mm: expected 3 positive voxel sizes (z, y, x), got {self.spacing_mm}")
        if not bool(torch.isfinite(density).all()) or bool((density < 0).any()):
            raise ValueError("medium: densities must be finite and >= 0")
        if bool((material < 0).any()) or bool((material >= len(self.materials)).any()):
            raise ValueError(f"medium: material indices must lie in [0, {len(self.materials)})")
        if self.surrounding is not None and not self.surrounding[1] > 0:
            raise ValueError(f"surrounding: an infinite medium needs a density > 0, got {self.surrounding[1]}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.density_g_per_cm3.shape)

    @property
    def voxel_volume_ml(self) -> float:
        return math.prod(self.spacing_mm) / MM_PER_CM**3

    @functools.cached_property
    def lookup(self) -> _Grid:
        """Flat voxel lookup tables for transport, built once per medium (on the medium's device)."""
        return _Grid(self)

    def to(self, device: torch.device) -> Medium:
        """The same medium with its tensors on ``device`` (density float32, materials int64); itself if already so."""
        density, material = self.density_g_per_cm3, self.material_index
        on_device = density.device.type == device.type and device.index in (None, density.device.index)
        if on_device and density.dtype == torch.float32 and material.dtype == torch.int64:
            return self
        return Medium(
            self.density_g_per_cm3.to(device=device, dtype=torch.float32),
            self.material_index.to(device=device, dtype=torch.int64),
            tuple(float(s) for s in self.spacing_mm),
            self.materials,
            self.surrounding,
        )


def medium_from_hu(hu: np.ndarray | torch.Tensor, spacing_mm: tuple[float, float, float], device=None) -> Medium:
    """Medium from a CT (HU, shape (z, y, x)): density by the seed-002 calibration, material class by HU interval."""
    hu = torch.as_tensor(np.asarray(hu) if not isinstance(hu, torch.Tensor) else hu, dtype=torch.float32)
    hu = hu.to(resolve_device(device))
    return Medium(density_g_per_cm3_from_hu(hu), material_index_from_hu(hu), tuple(float(s) for s in spacing_mm))


def homogeneous_medium(
    shape: tuple[int, int, int],
    spacing_mm: tuple[float, float, float],
    material: str = "soft_tissue",
    density_g_per_cm3: float = 1.04,
    *,
    infinite: bool = False,
    device=None,
) -> Medium:
    """A grid filled with one material; ``infinite`` extends the medium beyond the grid (no escape)."""
    device = resolve_device(device)
    return Medium(
        torch.full(shape, float(density_g_per_cm3), device=device),
        torch.zeros(shape, dtype=torch.int64, device=device),
        tuple(float(s) for s in spacing_mm),
        (material,),
        (0, float(density_g_per_cm3)) if infinite else None,
    )


# --------------------------------------------------------------------------------------------------------------
# transport


@dataclass
class PhotonTally:
    """What a set of photon histories did.

    Attributes:
        deposited_MeV: energy deposited in each voxel (flattened (z, y, x) order), float64 tensor, shape (n_voxels,).
        surrounding_MeV: energy deposited in the infinite medium beyond the grid (0 without one).
        escaped_MeV: energy carried out of the grid by escaping photons.
        escaped: number of escaped photons; escaped_uncollided: of those, how many never interacted.
        interactions: number of real interactions by type (photoelectric, compton, rayleigh).
    """

    deposited_MeV: torch.Tensor
    surrounding_MeV: float
    escaped_MeV: float
    escaped: int
    escaped_uncollided: int
    interactions: dict[str, int] = field(default_factory=dict)


def transport_photons(
    medium: Medium,
    position_cm: torch.Tensor,
    direction: torch.Tensor,
    energy_MeV: torch.Tensor,
    generator: torch.Generator,
    *,
    cutoff_MeV: float = PHOTON_CUTOFF_MEV,
    cross_sections: PhotonCrossSections | None = None,
) -> PhotonTally:
    """Transport photons through ``medium`` by Woodcock tracking until they are absorbed or escape.

    Args:
        medium: the voxel grid (tensors on the device of the photons).
        position_cm: start points (z, y, x) in cm from the grid corner, float32, shape (n, 3).
        direction: unit vectors, float32, shape (n, 3).
        energy_MeV: energies (>= ``cutoff_MeV``), float32, shape (n,).
        generator: torch random generator on the same device.
        cutoff_MeV: energy below which a photon is absorbed where it is.
        cross_sections: tables covering [cutoff, max energy]; built when None.
    """
    device = position_cm.device
    if cross_sections is None:
        cross_sections = PhotonCrossSections(medium.materials, cutoff_MeV, float(energy_MeV.max()), device)
    grid = medium.to(device).lookup
    majorant = cross_sections.majorant_per_cm(grid.max_density_per_material)
    tally = torch.zeros(grid.voxels + 1, dtype=torch.float64, device=device)
    escaped_energy = torch.zeros((), dtype=torch.float64, device=device)
    counters = torch.zeros(5, dtype=torch.int64, device=device)  # escaped, uncollided, photo, compton, rayleigh
    position, direction, energy = position_cm.clone(), direction.clone(), energy_MeV.clone()
    collided = torch.zeros(len(energy), dtype=torch.bool, device=device)
    while len(energy):
        mu_max = majorant[cross_sections.bin_of(energy)]
        uniform = 1.0 - torch.rand(len(energy), generator=generator, device=device)
        position = position - (torch.log(uniform) / mu_max)[:, None] * direction
        voxel, leaving = grid.locate(position)
        escaped_energy += energy[leaving].double().sum()
        counters[0] += leaving.sum()
        counters[1] += (leaving & ~collided).sum()
        partial = cross_sections.mass_coefficients(grid.material[voxel], energy) * grid.density[voxel][:, None]
        draw = torch.rand(len(energy), generator=generator, device=device) * mu_max
        real = (draw < partial.sum(dim=1)) & ~leaving
        photo = real & (draw < partial[:, 0])
        compton = real & ~photo & (draw < partial[:, 0] + partial[:, 1])
        rayleigh = real & ~photo & ~compton
        new_energy = torch.where(photo, torch.zeros_like(energy), energy)
        direction = _scatter(direction, energy, new_energy, compton, rayleigh, cutoff_MeV, generator)
        tally.index_add_(0, voxel[real], (energy - new_energy)[real].double())
        counters[2:] += torch.stack((photo.sum(), compton.sum(), rayleigh.sum()))
        collided |= real
        alive = (new_energy > 0) & ~leaving
        position, direction, energy, collided = position[alive], direction[alive], new_energy[alive], collided[alive]
    counts = counters.tolist()
    return PhotonTally(
        deposited_MeV=tally[:-1],
        surrounding_MeV=float(tally[-1]),
        escaped_MeV=float(escaped_energy),
        escaped=counts[0],
        escaped_uncollided=counts[1],
        interactions=dict(zip(("photoelectric", "compton", "rayleigh"), counts[2:], strict=True)),
    )


def _scatter(
    direction: torch.Tensor,
    energy: torch.Tensor,
    new_energy: torch.Tensor,
    compton: torch.Tensor,
    rayleigh: torch.Tensor,
    cutoff_MeV: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Apply Compton and Rayleigh scatterings: new directions returned, ``new_energy`` updated in place."""
    compton_index, rayleigh_index = compton.nonzero().squeeze(1), rayleigh.nonzero().squeeze(1)
    scattered_energy, compton_cos = sample_klein_nishina(energy[compton_index], generator)
    new_energy[compton_index] = torch.where(
        scattered_energy < cutoff_MeV, torch.zeros_like(scattered_energy), scattered_energy
    )
    index = torch.cat((compton_index, rayleigh_index))
    if not len(index):
        return direction
    cos_theta = torch.cat((compton_cos, sample_rayleigh_cosines(len(rayleigh_index), generator, energy.device)))
    phi = 2.0 * math.pi * torch.rand(len(index), generator=generator, device=energy.device)
    direction = direction.clone()
    direction[index] = rotate_directions(direction[index], cos_theta, phi)
    return direction


class _Grid:
    """Voxel lookup for transport: flat density/material arrays with one extra entry for the surroundings."""

    def __init__(self, medium: Medium) -> None:
        device = medium.density_g_per_cm3.device
        self.shape = torch.as_tensor(medium.shape, device=device)
        self.strides = torch.as_tensor([medium.shape[1] * medium.shape[2], medium.shape[2], 1], device=device)
        self.spacing_cm = torch.as_tensor(medium.spacing_mm, dtype=torch.float32, device=device) / MM_PER_CM
        self.voxels = math.prod(medium.shape)
        self.infinite = medium.surrounding is not None
        outside_material, outside_density = medium.surrounding if self.infinite else (0, 0.0)
        self.density = torch.cat((medium.density_g_per_cm3.reshape(-1), torch.tensor([outside_density], device=device)))
        self.material = torch.cat((medium.material_index.reshape(-1), torch.tensor([outside_material], device=device)))
        n = len(medium.materials)
        self.max_density_per_material = torch.zeros(n, device=device).scatter_reduce(
            0, self.material, self.density, reduce="amax"
        )

    def locate(self, position_cm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(flat voxel index, or the extra index outside the grid; mask of photons that left a vacuum-bounded grid)."""
        index = torch.floor(position_cm / self.spacing_cm).long()
        inside = ((index >= 0) & (index < self.shape)).all(dim=1)
        voxel = torch.where(inside, (index * self.strides).sum(dim=1), self.voxels)
        leaving = torch.zeros_like(inside) if self.infinite else ~inside
        return voxel, leaving


# --------------------------------------------------------------------------------------------------------------
# sources


@dataclass(frozen=True)
class PhotonLines:
    """Photon lines of a nuclide at or above the cut-off, for sampling.

    Attributes:
        energies_MeV, yields: the lines, shape (n,); photons_per_decay: their total yield;
        local_MeV_per_decay: energy of the lines below the cut-off, deposited where emitted.
    """

    energies_MeV: np.ndarray
    yields: np.ndarray
    photons_per_decay: float
    local_MeV_per_decay: float

    @classmethod
    def of(cls, nuclide: Nuclide, cutoff_MeV: float) -> PhotonLines:
        energies, yields = nuclide.photon_lines(min_energy_MeV=cutoff_MeV)
        below = nuclide.photon_energies_MeV < cutoff_MeV
        local = float(np.sum(nuclide.photon_energies_MeV[below] * nuclide.photon_yields[below]))
        return cls(energies, yields, float(np.sum(yields)), local)

    def sample(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Energies (MeV) of ``n`` photons drawn in proportion to the yields, float32, shape (n,)."""
        cdf = torch.as_tensor(np.cumsum(self.yields) / self.photons_per_decay, dtype=torch.float64, device=device)
        line = torch.searchsorted(cdf, torch.rand(n, generator=generator, device=device, dtype=torch.float64))
        energies = torch.as_tensor(self.energies_MeV, dtype=torch.float32, device=device)
        return energies[torch.clamp(line, max=len(self.energies_MeV) - 1)]


def sample_decay_positions(
    activity: torch.Tensor, spacing_mm: tuple[float, float, float], n: int, generator: torch.Generator
) -> torch.Tensor:
    """Decay points (z, y, x) in cm from the grid corner, shape (n, 3), float32.

    A voxel is chosen with probability proportional to its activity (by inverse cumulative search, so any
    number of voxels works), then a point uniformly inside it.
    """
    cdf = torch.cumsum(activity.reshape(-1).double(), dim=0)
    draw = torch.rand(n, generator=generator, device=activity.device, dtype=torch.float64) * cdf[-1]
    flat = torch.clamp(torch.searchsorted(cdf, draw, right=True), max=activity.numel() - 1)
    index = torch.stack(torch.unravel_index(flat, activity.shape), dim=1).float()
    spacing_cm = torch.as_tensor(spacing_mm, dtype=torch.float32, device=activity.device) / MM_PER_CM
    return (index + torch.rand((n, 3), generator=generator, device=activity.device)) * spacing_cm
