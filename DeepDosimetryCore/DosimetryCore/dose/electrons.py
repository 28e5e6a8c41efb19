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
- Angular deflection: after every step (4 % energy loss) the direction turns by a multiple-scattering angle
  whose mean cosine is exact for the step, <cos theta> = exp(-s / lambda_1) (Goudsmit and Saunderson,
  Phys. Rev. 57 (1940) 24), with the transport mean free path lambda_1 of screened-Rutherford elastic
  scattering on the atoms of water: per element the first transport cross section
  sigma_1 = 2 pi Z (Z + 1) r_e^2 (m_e c^2)^2 / (p beta c)^2 [ln(1 + 1/eta) - 1/(1 + eta)], atomic electrons
  counted by Z (Z + 1) (Bethe, Phys. Rev. 89 (1953) 1256), with Moliere's screening parameter
  eta = (1/4) (alpha Z^(1/3) m_e c / (0.885 p))^2 (1.13 + 3.76 (alpha Z / beta)^2) (Moliere,
  Z. Naturforsch. 2a (1947) 133; the form used by EGS4 and Geant4's Urban model). The angle is sampled
  from a single screened-Rutherford (Wentzel) distribution whose screening constant A is solved so that it
  has that mean cosine, 1 - <cos theta> = 2 A [(1 + A) ln(1 + 1/A) - 1] (the idea of the modified Wentzel
  model of Fernandez-Varea et al., NIM B 73 (1993) 447, matching the first moment only). The scoring point
  of a step's energy loss is uniform along the straight step; results do not change when the step loss is
  halved or doubled (tested).
- Electrons are followed down to 10 keV (residual CSDA range 2.5 um); the rest is deposited where they stop.

Why this model: the previous version (model 2) turned electrons by the Rossi-Greisen Gaussian width
(Es = 21.2 MeV and the radiation length, sampled as a Rayleigh-distributed polar angle), which gave a mean
square angle per step four to six times 2 s / lambda_1 for 30-500 keV electrons in water, i.e. about twice
the real deflection; its kernels were about 37 % too compact (177Lu X90
0.36 mm instead of about 0.59 mm). With the transport cross section above, monoenergetic kernels in water
match the published ETRAN/EGSnrc scaled point kernels (X50 and X90 at 100 keV and 500 keV within 5 %,
tested) and the 177Lu kernel matches published sphere absorbed fractions and voxel S-values (tested in
``Testing/test_dose_kernels.py`` with their sources). Energy-loss straggling and delta rays are still
neglected: they widen the fall-off at the end of the range by a few percent of the range.

The result is a radial energy-deposition profile in units of density x distance (g/cm^2), which scales to
any medium density (O'Connor's scaling theorem for charged particles: same stopping and scattering per unit
mass thickness). For 177Lu, 90 % of the electron energy lies within about 0.6 mm of the source in water and
half within about 0.17 mm; for voxels of several mm the beta kernel is therefore concentrated in the source
voxel, which is why local deposition is the usual choice at ~4.8 mm voxels (the kernel still moves ~7 % of
the beta energy into the neighbours of a 4.8 mm voxel, from decays close to a face).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.constants import MM_PER_CM
from ..core.device import resolve_device
from ..physics.nuclides import Nuclide, load_nuclide
from . import cache
from .directions import isotropic_directions, rotate_directions
from .electron_physics import (
    csda_range_g_per_cm2,
    range_lookup,
    sample_wentzel_cosines,
    screening_lookup,
    transport_lookup,
)

ELECTRON_CUTOFF_MEV = 0.010
"""Electrons are followed down to this kinetic energy (MeV); the rest is deposited where they stop."""

STEP_ENERGY_LOSS_FRACTION = 0.04
"""Fraction of the kinetic energy lost per condensed-history step."""

ELECTRON_MODEL_VERSION = "3"
"""Version of the electron model above; part of every cached kernel's parameters (3: screened-Rutherford
multiple scattering; 2: Rossi-Greisen Gaussian scattering, about 37 % too compact)."""

DEFAULT_ELECTRONS = 200_000
DEFAULT_SEED = 177
ELECTRON_SEED = DEFAULT_SEED
"""Seed of the shipped radial point kernel (:func:`beta_point_kernel` defaults)."""
RADIAL_BINS = 400

_MAX_MEAN_DEFLECTION = 0.999
"""Largest 1 - <cos theta> sampled over one step (1 would be isotropic)."""


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
    energy = sample_electron_energies(data, electrons, generator, device)
    edges, tally = radial_walk(energy, max_energy, bins, generator)
    return RadialKernel(edges, _normalised(tally), electrons, seed)


def monoenergetic_point_kernel(
    energy_MeV: float,
    electrons: int = 50_000,
    seed: int = DEFAULT_SEED,
    bins: int = RADIAL_BINS,
    *,
    step_energy_loss_fraction: float = STEP_ENERGY_LOSS_FRACTION,
    device: str | None = "cpu",
) -> RadialKernel:
    """Radial energy deposition around an isotropic point source of electrons of one kinetic energy in water.

    The same walk as :func:`electron_point_kernel`; used to check the model against published monoenergetic
    point kernels. Shells span 0 to 1.02 x the CSDA range of ``energy_MeV``.
    """
    if not (ELECTRON_CUTOFF_MEV < energy_MeV <= 10.0):
        raise ValueError(f"energy_MeV: expected an energy between {ELECTRON_CUTOFF_MEV} and 10 MeV, got {energy_MeV}")
    device = resolve_device(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    energy = torch.full((electrons,), float(energy_MeV), device=device)
    edges, tally = radial_walk(energy, energy_MeV, bins, generator, step_energy_loss_fraction)
    return RadialKernel(edges, _normalised(tally), electrons, seed)


def radial_walk(
    energy_MeV: torch.Tensor,
    max_energy_MeV: float,
    bins: int,
    generator: torch.Generator,
    step_energy_loss_fraction: float = STEP_ENERGY_LOSS_FRACTION,
) -> tuple[np.ndarray, np.ndarray]:
    """Follow electrons of initial kinetic energies ``energy_MeV`` (shape (n,)) from the origin in isotropic
    directions through water (model of the module docstring) and tally their energy in spherical shells.

    Vectorised over electrons; the loop runs over condensed-history steps (~100).

    Returns:
        (shell edges in g/cm^2 from 0 to 1.02 x the CSDA range of ``max_energy_MeV``, shape (bins + 1,);
        energy deposited per shell in MeV, float64, shape (bins,)).
    """
    device = energy_MeV.device
    ranges = range_lookup(max(1.0, 1.01 * max_energy_MeV), device)
    transport = transport_lookup(max(1.0, 1.01 * max_energy_MeV), device)
    screening = screening_lookup(_MAX_MEAN_DEFLECTION, device)
    edges = np.linspace(0.0, 1.02 * float(csda_range_g_per_cm2(max_energy_MeV)), bins + 1)
    width = float(edges[1])
    tally = torch.zeros(bins, dtype=torch.float64, device=device)

    tracked = energy_MeV >= ELECTRON_CUTOFF_MEV
    tally[0] += energy_MeV[~tracked].double().sum()
    energy = energy_MeV[tracked]
    position = torch.zeros((len(energy), 3), device=device)
    direction = isotropic_directions(len(energy), generator, device)
    while len(energy):
        next_energy = energy * (1.0 - step_energy_loss_fraction)
        next_energy = torch.where(next_energy < ELECTRON_CUTOFF_MEV, torch.zeros_like(next_energy), next_energy)
        step = ranges(energy) - ranges(next_energy)
        along = torch.rand(len(energy), generator=generator, device=device)
        radius = torch.linalg.vector_norm(position + (along * step)[:, None] * direction, dim=1)
        shell = torch.clamp((radius / width).long(), max=bins - 1)
        tally.index_add_(0, shell, (energy - next_energy).double())
        position = position + step[:, None] * direction
        mean_deflection = -torch.expm1(-step * transport(0.5 * (energy + next_energy)))
        mean_deflection = torch.clamp(mean_deflection, 1.0e-9, _MAX_MEAN_DEFLECTION)
        cos_theta = sample_wentzel_cosines(screening(mean_deflection), generator)
        phi = 2.0 * math.pi * torch.rand(len(energy), generator=generator, device=device)
        direction = rotate_directions(direction, cos_theta, phi)
        alive = next_energy > 0
        energy, position, direction = next_energy[alive], position[alive], direction[alive]
    return edges, tally.cpu().numpy()


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
