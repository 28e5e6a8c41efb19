"""Electron energy deposition around a point source: the beta point kernel used for voxels smaller than the beta range.

Model (a simple class-I condensed-history random walk, continuous slowing down, in liquid water):

- Emission: the nuclide's electrons as tabulated in ICRP 107 (:mod:`DosimetryCore.physics.nuclides`): beta particles
  from the binned beta spectrum, conversion and Auger electrons from their lines, each sampled with its yield.
- Energy loss: continuous slowing down (CSDA) with the Bethe collision stopping power for electrons
  (ICRU Report 37 (1984), eq. 2.15 with the Rohrlich-Carlson F-; mean excitation energy of water 75 eV as in
  ICRU 37 and NIST ESTAR; <Z/A> from the water composition of :data:`DosimetryCore.physics.tissue.MATERIALS`).
  The density-effect correction is zero for water below about 0.6 MeV (Sternheimer's X0 = 0.24 for water)
  and is neglected; bremsstrahlung (radiation yield about 0.1 % at 0.5 MeV in water, ESTAR) is deposited
  locally; energy-loss straggling and delta rays are neglected. The CSDA ranges agree with ESTAR to ~1 %
  between 10 keV and 1 MeV (tested).
- Angular deflection: after every step (4 % energy loss) the direction turns by a Gaussian multiple-scattering
  angle with variance (Es / (p beta c))^2 s / X0 (Rossi and Greisen, Rev. Mod. Phys. 13 (1941) 240;
  Es = m_e c^2 sqrt(4 pi / alpha) = 21.2 MeV; radiation length of water X0 = 36.08 g/cm^2, Particle Data
  Group, Atomic and Nuclear Properties of Materials). This Fermi-Eyges-type scattering power is known to
  overestimate the spread of low-energy electrons somewhat, so kernels are slightly more compact than
  full Monte Carlo (e.g. EGS or Geant4) kernels.
- Electrons are followed down to 10 keV (residual CSDA range 2.5 um); the rest is deposited where they stop.

The result is a radial energy-deposition profile in units of density x distance (g/cm^2), which scales to
any medium density (O'Connor's scaling theorem for charged particles: same stopping and scattering per unit
mass thickness). For 177Lu, 90 % of the electron energy lies within about 0.36 mm of the source in water;
for voxels of several mm the beta kernel is therefore concentrated in the source voxel, which is why local
deposition is the usual choice at ~4.8 mm voxels (the kernel still moves ~5 % of the beta energy into the
neighbours of a 4.8 mm voxel, from decays close to a face).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import xraydb

from ..core.constants import (
    AVOGADRO_PER_MOL,
    CLASSICAL_ELECTRON_RADIUS_CM,
    ELECTRON_REST_ENERGY_MEV,
    FINE_STRUCTURE_CONSTANT,
    MM_PER_CM,
    WATER_MEAN_EXCITATION_ENERGY_MEV,
    WATER_RADIATION_LENGTH_G_PER_CM2,
)
from ..core.device import resolve_device
from ..physics.nuclides import Nuclide, load_nuclide
from ..physics.tissue import MATERIALS
from . import cache
from .directions import isotropic_directions, rotate_directions

# Rossi-Greisen multiple-scattering energy Es = m_e c^2 sqrt(4 pi / alpha) = 21.2 MeV.
SCATTERING_ENERGY_MEV = ELECTRON_REST_ENERGY_MEV * math.sqrt(4.0 * math.pi / FINE_STRUCTURE_CONSTANT)

ELECTRON_CUTOFF_MEV = 0.010
"""Electrons are followed down to this kinetic energy (MeV); the rest is deposited where they stop."""

STEP_ENERGY_LOSS_FRACTION = 0.04
"""Fraction of the kinetic energy lost per condensed-history step."""

ELECTRON_MODEL_VERSION = "2"
"""Version of the electron model above; part of every cached kernel's parameters."""

DEFAULT_ELECTRONS = 200_000
DEFAULT_SEED = 177
ELECTRON_SEED = DEFAULT_SEED
"""Seed of the shipped radial point kernel (:func:`beta_point_kernel` defaults)."""
RADIAL_BINS = 400

_RANGE_GRID_MIN_MEV = 1.0e-3
_RANGE_GRID_POINTS = 2000


def water_electrons_per_gram_ratio() -> float:
    """<Z/A> of liquid water (mol/g) from its composition in :data:`DosimetryCore.physics.tissue.MATERIALS`."""
    return sum(
        fraction * xraydb.atomic_number(symbol) / xraydb.atomic_mass(symbol)
        for symbol, fraction in MATERIALS["water"].mass_fractions
    )


def collision_stopping_power_MeV_cm2_per_g(kinetic_energy_MeV: np.ndarray) -> np.ndarray:
    """Mass collision stopping power of liquid water for electrons (MeV cm^2/g), Bethe formula (ICRU 37 eq. 2.15).

    Density effect neglected (zero below ~0.6 MeV in water). Valid from ~1 keV to ~1 MeV.

    Args:
        kinetic_energy_MeV: electron kinetic energies in MeV, any shape.
    Returns:
        float64 array of the same shape.
    """
    tau = np.asarray(kinetic_energy_MeV, dtype=np.float64) / ELECTRON_REST_ENERGY_MEV
    beta2 = 1.0 - 1.0 / (tau + 1.0) ** 2
    excitation = WATER_MEAN_EXCITATION_ENERGY_MEV / ELECTRON_REST_ENERGY_MEV
    f_minus = 1.0 - beta2 + (tau**2 / 8.0 - (2.0 * tau + 1.0) * math.log(2.0)) / (tau + 1.0) ** 2
    prefactor = (
        2.0
        * math.pi
        * CLASSICAL_ELECTRON_RADIUS_CM**2
        * ELECTRON_REST_ENERGY_MEV
        * AVOGADRO_PER_MOL
        * water_electrons_per_gram_ratio()
        / beta2
    )
    return prefactor * (np.log(tau**2 * (tau + 2.0) / (2.0 * excitation**2)) + f_minus)


@functools.cache
def _range_table(max_energy_MeV: float) -> tuple[np.ndarray, np.ndarray]:
    """(energies in MeV, CSDA ranges in g/cm^2) on a log grid from 1 keV, float64, shape (n,) each."""
    energies = np.geomspace(_RANGE_GRID_MIN_MEV, max_energy_MeV, _RANGE_GRID_POINTS)
    integrand = energies / collision_stopping_power_MeV_cm2_per_g(energies)  # dR / d(ln T)
    steps = 0.5 * (integrand[1:] + integrand[:-1]) * np.diff(np.log(energies))
    # Below 1 keV, R ~ T / S to the order needed (R(1 keV) is ~0.05 um).
    ranges = integrand[0] + np.concatenate(([0.0], np.cumsum(steps)))
    return energies, ranges


def csda_range_g_per_cm2(kinetic_energy_MeV: np.ndarray | float) -> np.ndarray:
    """CSDA range of electrons in liquid water (g/cm^2; divide by the density for cm), from 1 keV.

    Accurate to ~1-2 % up to 1 MeV (ESTAR); above, the neglected density effect makes it slightly short.
    """
    energies_MeV = np.asarray(kinetic_energy_MeV, dtype=np.float64)
    energies, ranges = _range_table(max(1.0, float(np.max(energies_MeV))))
    return np.exp(np.interp(np.log(energies_MeV), np.log(energies), np.log(ranges)))


@dataclass(frozen=True)
class RadialKernel:
    """Electron energy deposited around an isotropic point source in water, per decay.

    Attributes:
        edges_g_per_cm2: radial shell edges in mass thickness (g/cm^2 = cm at 1 g/cm^3), shape (n + 1,).
        fractions: fraction of the emitted electron energy deposited in each shell, shape (n,), sum 1.
        electrons: number of electron histories simulated; seed: their random seed.
    """

    edges_g_per_cm2: np.ndarray
    fractions: np.ndarray
    electrons: int
    seed: int

    def radius_g_per_cm2(self, fraction: float) -> float:
        """Radius (g/cm^2) of the sphere holding ``fraction`` of the electron energy (e.g. 0.9 for X90)."""
        cumulative = np.concatenate(([0.0], np.cumsum(self.fractions)))
        return float(np.interp(fraction, cumulative, self.edges_g_per_cm2))


def _electron_lines(nuclide: Nuclide) -> tuple[np.ndarray, np.ndarray]:
    """Electron 'lines' for sampling: (energies, yields per decay); energy NaN marks the beta continuum."""
    energies = np.concatenate(([np.nan], nuclide.electron_energies_MeV))
    yields = np.concatenate(([float(np.sum(nuclide.beta_yields))], nuclide.electron_yields))
    return energies, yields


def sample_electron_energies(
    nuclide: Nuclide, n: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Kinetic energies (MeV) of ``n`` electrons drawn from the nuclide's emissions in proportion to their yields.

    Beta particles come from the binned ICRP-107 spectrum (uniform within a 1 keV bin), conversion and Auger
    electrons from their lines. Returns float32, shape (n,).
    """
    energies, yields = _electron_lines(nuclide)
    line_cdf = torch.as_tensor(np.cumsum(yields) / np.sum(yields), dtype=torch.float64, device=device)
    line = torch.searchsorted(line_cdf, torch.rand(n, generator=generator, device=device, dtype=torch.float64))
    line = torch.clamp(line, max=len(yields) - 1)
    edges = torch.tensor(nuclide.beta_spectrum_edges_MeV, dtype=torch.float64, device=device)
    bin_cdf = torch.as_tensor(np.cumsum(nuclide.beta_spectrum_probabilities), dtype=torch.float64, device=device)
    beta_bin = torch.searchsorted(bin_cdf, torch.rand(n, generator=generator, device=device, dtype=torch.float64))
    beta_bin = torch.clamp(beta_bin, max=len(bin_cdf) - 1)
    within = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    beta = edges[beta_bin] + within * (edges[beta_bin + 1] - edges[beta_bin])
    line_energies = torch.as_tensor(np.nan_to_num(energies), dtype=torch.float64, device=device)
    return torch.where(line == 0, beta, line_energies[line]).to(torch.float32)


class _RangeLookup:
    """CSDA range R(T) in g/cm^2 by linear interpolation on a log-energy grid, on a torch device."""

    def __init__(self, max_energy_MeV: float, device: torch.device) -> None:
        energies, ranges = _range_table(max_energy_MeV)
        self.log_min = math.log(energies[0])
        self.step = math.log(energies[1] / energies[0])
        self.ranges = torch.as_tensor(ranges, dtype=torch.float32, device=device)

    def __call__(self, energy_MeV: torch.Tensor) -> torch.Tensor:
        position = (torch.log(torch.clamp(energy_MeV, min=_RANGE_GRID_MIN_MEV)) - self.log_min) / self.step
        index = torch.clamp(position.floor().long(), 0, len(self.ranges) - 2)
        weight = position - index
        value = self.ranges[index] * (1.0 - weight) + self.ranges[index + 1] * weight
        return torch.where(energy_MeV > 0, value, torch.zeros_like(value))


def _scattering_sigma_rad(energy_MeV: torch.Tensor, step_g_per_cm2: torch.Tensor) -> torch.Tensor:
    """Rossi-Greisen Gaussian multiple-scattering width (rad) over a step at kinetic energy ``energy_MeV``."""
    total = energy_MeV + ELECTRON_REST_ENERGY_MEV
    p_beta_c = energy_MeV * (energy_MeV + 2.0 * ELECTRON_REST_ENERGY_MEV) / total
    return SCATTERING_ENERGY_MEV / p_beta_c * torch.sqrt(step_g_per_cm2 / WATER_RADIATION_LENGTH_G_PER_CM2)


def beta_point_kernel(
    nuclide: str = "Lu-177",
    *,
    electrons: int = DEFAULT_ELECTRONS,
    seed: int = DEFAULT_SEED,
    cache_dir: str | None = None,
) -> RadialKernel:
    """The radial electron kernel of ``nuclide`` from the kernel cache (Resources/Kernels), generated on the CPU
    by :func:`electron_point_kernel` and stored there (with its provenance) when missing."""
    data = load_nuclide(nuclide)
    parameters = {
        "kind": "electron point kernel in water",
        "nuclide": data.name,
        "nuclide_source": data.source,
        "electrons": electrons,
        "seed": seed,
        "bins": RADIAL_BINS,
        "model_version": ELECTRON_MODEL_VERSION,
        "device": "cpu",
    }
    stem = cache.entry_stem(f"{data.name}_electron_point_kernel", parameters)
    stored = cache.load(stem, parameters, cache_dir)
    if stored is not None:
        arrays = stored[0]
        return RadialKernel(
            arrays["edges_g_per_cm2"].astype(np.float64), _normalised(arrays["fractions"]), electrons, seed
        )
    kernel = electron_point_kernel(data.name, electrons, seed, RADIAL_BINS, "cpu")
    record = {
        "parameters": parameters,
        "description": "fraction of the emitted electron energy deposited in spherical shells (g/cm^2) around "
        "an isotropic point source in liquid water; see DosimetryCore.dose.electrons",
        "x50_g_per_cm2": kernel.radius_g_per_cm2(0.5),
        "x90_g_per_cm2": kernel.radius_g_per_cm2(0.9),
    }
    cache.save(stem, {"edges_g_per_cm2": kernel.edges_g_per_cm2, "fractions": kernel.fractions}, record, cache_dir)
    return kernel


def _normalised(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    return values / values.sum()


@functools.cache
def electron_point_kernel(
    nuclide: str = "Lu-177",
    electrons: int = DEFAULT_ELECTRONS,
    seed: int = DEFAULT_SEED,
    bins: int = RADIAL_BINS,
    device: str | None = "cpu",
) -> RadialKernel:
    """Radial electron energy deposition around a point source of ``nuclide`` in water (see the module docstring).

    Cached in memory per argument set (see :func:`beta_point_kernel` for the file cache). Vectorised over
    electrons; the loop runs over condensed-history steps (~100).

    Args:
        nuclide: nuclide name, e.g. ``"Lu-177"``.
        electrons: number of electron histories.
        seed: seed of the torch generator.
        bins: number of radial shells between 0 and 1.02 x the CSDA range of the most energetic electron.
        device: torch device (``None``: cuda when available).
    """
    data = load_nuclide(nuclide)
    device = resolve_device(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    max_energy = max(float(data.beta_spectrum_edges_MeV[-1]), float(np.max(data.electron_energies_MeV)))
    ranges = _RangeLookup(max(1.0, 1.01 * max_energy), device)
    edges = np.linspace(0.0, 1.02 * float(csda_range_g_per_cm2(max_energy)), bins + 1)
    width = float(edges[1])
    tally = torch.zeros(bins, dtype=torch.float64, device=device)

    energy = sample_electron_energies(data, electrons, generator, device)
    tracked = energy >= ELECTRON_CUTOFF_MEV
    tally[0] += energy[~tracked].double().sum()
    energy = energy[tracked]
    position = torch.zeros((len(energy), 3), device=device)
    direction = isotropic_directions(len(energy), generator, device)
    while len(energy):
        next_energy = energy * (1.0 - STEP_ENERGY_LOSS_FRACTION)
        next_energy = torch.where(next_energy < ELECTRON_CUTOFF_MEV, torch.zeros_like(next_energy), next_energy)
        step = ranges(energy) - ranges(next_energy)
        along = torch.rand(len(energy), generator=generator, device=device)
        radius = torch.linalg.vector_norm(position + (along * step)[:, None] * direction, dim=1)
        shell = torch.clamp((radius / width).long(), max=bins - 1)
        tally.index_add_(0, shell, (energy - next_energy).double())
        position = position + step[:, None] * direction
        sigma = _scattering_sigma_rad(0.5 * (energy + next_energy), step)
        theta = sigma * torch.sqrt(-2.0 * torch.log(1.0 - torch.rand(len(energy), generator=generator, device=device)))
        phi = 2.0 * math.pi * torch.rand(len(energy), generator=generator, device=device)
        direction = rotate_directions(direction, torch.cos(theta), phi)
        alive = next_energy > 0
        energy, position, direction = next_energy[alive], position[alive], direction[alive]
    return RadialKernel(edges, _normalised(tally.cpu().numpy()), electrons, seed)


def beta_voxel_fractions(
    radial: RadialKernel,
    spacing_mm: tuple[float, float, float],
    density_g_per_cm3: float,
    size: tuple[int, int, int] | None = None,
    *,
    samples: int = 1_000_000,
    seed: int = DEFAULT_SEED,
    device: str | torch.device | None = "cpu",
) -> np.ndarray:
    """Fraction of the electron energy released uniformly in the centre voxel that is deposited in each voxel.

    The radial kernel is scaled to ``density_g_per_cm3`` (distances divide by the density) and integrated over
    a uniformly filled source voxel and the target voxels by Monte Carlo (``samples`` point pairs), then made
    symmetric under the reflections (and axis exchanges of equal spacing) of the voxel grid.

    Args:
        radial: the point kernel, from :func:`electron_point_kernel`.
        spacing_mm: voxel size (z, y, x) in mm.
        density_g_per_cm3: medium density.
        size: kernel shape (z, y, x), odd numbers; ``None`` covers the largest electron range.
    Returns:
        float64 array of shape ``size``; its sum is the fraction of the energy deposited inside the kernel
        (1 when it covers the range).
    """
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    max_radius_mm = float(radial.edges_g_per_cm2[-1]) / density_g_per_cm3 * MM_PER_CM
    if size is None:
        size = tuple(int(2 * math.ceil(max_radius_mm / s + 0.5) + 1) for s in spacing)
    half = torch.as_tensor([(n - 1) // 2 for n in size], device=resolve_device(device))
    device = half.device
    generator = torch.Generator(device=device).manual_seed(seed)
    spacing_t = torch.as_tensor(spacing, dtype=torch.float32, device=device)
    cumulative = torch.as_tensor(np.cumsum(radial.fractions), dtype=torch.float64, device=device)
    shell = torch.searchsorted(cumulative, torch.rand(samples, generator=generator, device=device, dtype=torch.float64))
    shell = torch.clamp(shell, max=len(radial.fractions) - 1)
    width_mm = float(radial.edges_g_per_cm2[1]) / density_g_per_cm3 * MM_PER_CM
    radius = ((shell + torch.rand(samples, generator=generator, device=device, dtype=torch.float64)) * width_mm).float()
    source = (torch.rand((samples, 3), generator=generator, device=device) - 0.5) * spacing_t
    target = source + radius[:, None] * isotropic_directions(samples, generator, device)
    index = torch.floor(target / spacing_t + 0.5).long() + half
    shape = torch.as_tensor(size, device=device)
    inside = ((index >= 0) & (index < shape)).all(dim=1)
    flat = (index[inside] * torch.as_tensor([size[1] * size[2], size[2], 1], device=device)).sum(dim=1)
    counts = torch.bincount(flat, minlength=int(np.prod(size))).double() / samples
    return symmetrize(counts.reshape(size).cpu().numpy(), tuple(spacing))


def symmetrize(kernel: np.ndarray, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Average a centred voxel kernel over the symmetries of its grid: reflections of every axis and the
    exchanges of axes with equal spacing and size (exact for a homogeneous medium and a uniform source voxel)."""
    for axis in range(3):
        kernel = 0.5 * (kernel + np.flip(kernel, axis=axis))
    permutations = [
        p
        for p in _axis_permutations()
        if all(np.isclose(spacing_mm[p[i]], spacing_mm[i]) and kernel.shape[p[i]] == kernel.shape[i] for i in range(3))
    ]
    return sum(np.transpose(kernel, p) for p in permutations) / len(permutations)


def _axis_permutations() -> list[tuple[int, int, int]]:
    return [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
