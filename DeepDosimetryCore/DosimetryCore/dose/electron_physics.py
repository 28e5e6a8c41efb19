"""Electron interaction data of liquid water for the condensed-history walk of :mod:`DosimetryCore.dose.electrons`.

- Collision stopping power (Bethe, ICRU Report 37 (1984) eq. 2.15 with the Rohrlich-Carlson F-; mean
  excitation energy 75 eV as ICRU 37 and NIST ESTAR; density effect neglected, zero for water below about
  0.6 MeV) and the CSDA range it implies (within ~2 % of ESTAR from 10 keV to 1 MeV, tested).
- Inverse transport mean free path 1/lambda_1 of screened-Rutherford elastic scattering with Moliere's
  screening parameter (references in :mod:`DosimetryCore.core.constants`), summed over the elements of water.
- The screening constant A of a single screened-Rutherford (Wentzel) angular distribution with a given mean
  deflection 1 - <cos theta> = 2 A [(1 + A) ln(1 + 1/A) - 1], and sampling from that distribution:
  1 - cos theta = 2 A xi / (1 - xi + A), xi uniform in [0, 1).

Energies in MeV, mass thicknesses in g/cm^2 (divide by the density for cm).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import xraydb

from ..core.constants import (
    AVOGADRO_PER_MOL,
    CLASSICAL_ELECTRON_RADIUS_CM,
    ELECTRON_REST_ENERGY_MEV,
    FINE_STRUCTURE_CONSTANT,
    MOLIERE_SCREENING_CONSTANT,
    MOLIERE_SCREENING_COULOMB_FACTOR,
    THOMAS_FERMI_RADIUS_FACTOR,
    WATER_MEAN_EXCITATION_ENERGY_MEV,
)
from ..physics.tissue import MATERIALS

TABLE_MIN_MEV = 1.0e-3
"""Lowest energy of the interpolation tables (MeV)."""
_TABLE_POINTS = 2000


def water_elements() -> list[tuple[int, float]]:
    """(atomic number Z, atoms per gram) of each element of liquid water (composition of
    :data:`DosimetryCore.physics.tissue.MATERIALS`)."""
    return [
        (xraydb.atomic_number(symbol), fraction * AVOGADRO_PER_MOL / xraydb.atomic_mass(symbol))
        for symbol, fraction in MATERIALS["water"].mass_fractions
    ]


def water_electrons_per_gram_ratio() -> float:
    """<Z/A> of liquid water (mol/g) from its composition in :data:`DosimetryCore.physics.tissue.MATERIALS`."""
    return sum(z * atoms for z, atoms in water_elements()) / AVOGADRO_PER_MOL


def _beta2_and_pc(kinetic_energy_MeV: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tau = np.asarray(kinetic_energy_MeV, dtype=np.float64) / ELECTRON_REST_ENERGY_MEV
    beta2 = 1.0 - 1.0 / (tau + 1.0) ** 2
    pc = ELECTRON_REST_ENERGY_MEV * np.sqrt(tau * (tau + 2.0))
    return beta2, pc


def collision_stopping_power_MeV_cm2_per_g(kinetic_energy_MeV: np.ndarray) -> np.ndarray:
    """Mass collision stopping power of liquid water for electrons (MeV cm^2/g), Bethe formula (ICRU 37 eq. 2.15).

    Density effect neglected (zero below ~0.6 MeV in water). Valid from ~1 keV to ~1 MeV.

    Args:
        kinetic_energy_MeV: electron kinetic energies in MeV, any shape.
    Returns:
        float64 array of the same shape.
    """
    tau = np.asarray(kinetic_energy_MeV, dtype=np.float64) / ELECTRON_REST_ENERGY_MEV
    beta2, _ = _beta2_and_pc(kinetic_energy_MeV)
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
def range_table(max_energy_MeV: float) -> tuple[np.ndarray, np.ndarray]:
    """(energies in MeV, CSDA ranges in g/cm^2) on a log grid from 1 keV, float64, shape (n,) each."""
    energies = np.geomspace(TABLE_MIN_MEV, max_energy_MeV, _TABLE_POINTS)
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
    energies, ranges = range_table(max(1.0, float(np.max(energies_MeV))))
    return np.exp(np.interp(np.log(energies_MeV), np.log(energies), np.log(ranges)))


def moliere_screening_parameter(kinetic_energy_MeV: np.ndarray, atomic_number: int) -> np.ndarray:
    """Moliere's screening parameter eta (dimensionless) of an atom of ``atomic_number`` for electrons."""
    beta2, pc = _beta2_and_pc(kinetic_energy_MeV)
    alpha_z = FINE_STRUCTURE_CONSTANT * atomic_number
    angle = FINE_STRUCTURE_CONSTANT * atomic_number ** (1.0 / 3.0) * ELECTRON_REST_ENERGY_MEV
    angle = angle / (THOMAS_FERMI_RADIUS_FACTOR * pc)
    return 0.25 * angle**2 * (MOLIERE_SCREENING_CONSTANT + MOLIERE_SCREENING_COULOMB_FACTOR * alpha_z**2 / beta2)


def inverse_transport_mean_free_path_cm2_per_g(kinetic_energy_MeV: np.ndarray) -> np.ndarray:
    """1/lambda_1 of liquid water for electrons (cm^2/g): screened-Rutherford first transport cross section
    2 pi Z (Z + 1) r_e^2 (m_e c^2)^2 / (p beta c)^2 [ln(1 + 1/eta) - 1/(1 + eta)] summed over the atoms."""
    beta2, pc = _beta2_and_pc(kinetic_energy_MeV)
    rutherford = 2.0 * math.pi * (CLASSICAL_ELECTRON_RADIUS_CM * ELECTRON_REST_ENERGY_MEV) ** 2 / (pc**2 * beta2)
    total = np.zeros_like(beta2)
    for z, atoms_per_gram in water_elements():
        eta = moliere_screening_parameter(kinetic_energy_MeV, z)
        total = total + atoms_per_gram * z * (z + 1) * rutherford * (np.log1p(1.0 / eta) - 1.0 / (1.0 + eta))
    return total


def wentzel_mean_deflection(screening: np.ndarray) -> np.ndarray:
    """1 - <cos theta> of the screened-Rutherford distribution with screening constant A (any shape)."""
    a = np.asarray(screening, dtype=np.float64)
    return 2.0 * a * ((1.0 + a) * np.log1p(1.0 / a) - 1.0)


class LogTable:
    """A positive function f(x) > 0 of x > 0 by linear interpolation of log f on a uniform log x grid, in torch.

    Values below the grid clamp to its first point; ``f(x <= 0)`` is 0.
    """

    def __init__(self, x: np.ndarray, values: np.ndarray, device: torch.device) -> None:
        self.log_min = math.log(float(x[0]))
        self.step = math.log(float(x[1] / x[0]))
        self.log_values = torch.as_tensor(np.log(values), dtype=torch.float32, device=device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        position = (torch.log(torch.clamp(x, min=math.exp(self.log_min))) - self.log_min) / self.step
        index = torch.clamp(position.floor().long(), 0, len(self.log_values) - 2)
        weight = torch.clamp(position - index, max=1.0)
        value = torch.exp(self.log_values[index] * (1.0 - weight) + self.log_values[index + 1] * weight)
        return torch.where(x > 0, value, torch.zeros_like(value))


def range_lookup(max_energy_MeV: float, device: torch.device) -> LogTable:
    """CSDA range R(T) in g/cm^2 as a torch lookup (R(0) = 0)."""
    return LogTable(*range_table(max_energy_MeV), device)


def transport_lookup(max_energy_MeV: float, device: torch.device) -> LogTable:
    """1/lambda_1(T) in cm^2/g as a torch lookup."""
    energies = np.geomspace(TABLE_MIN_MEV, max_energy_MeV, _TABLE_POINTS)
    return LogTable(energies, inverse_transport_mean_free_path_cm2_per_g(energies), device)


def screening_lookup(max_mean_deflection: float, device: torch.device) -> LogTable:
    """The screening constant A(g) of the Wentzel distribution with mean deflection g = 1 - <cos theta>,
    for 1e-9 <= g <= ``max_mean_deflection`` (< 1), as a torch lookup."""
    screening = np.geomspace(1.0e-12, 1.0e4, 20_000)
    deflection = wentzel_mean_deflection(screening)
    grid = np.geomspace(1.0e-9, max_mean_deflection, _TABLE_POINTS)
    return LogTable(grid, np.exp(np.interp(np.log(grid), np.log(deflection), np.log(screening))), device)


def sample_wentzel_cosines(screening: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """cos theta drawn from screened-Rutherford distributions with screening constants ``screening`` (shape (n,))."""
    xi = torch.rand(screening.shape, generator=generator, device=screening.device, dtype=torch.float64)
    a = screening.double()
    return (1.0 - 2.0 * a * xi / (1.0 - xi + a)).float()
