"""Photon interaction physics of the Monte Carlo engine: Klein-Nishina and Rayleigh sampling, cross sections.

Units: energies in MeV, mass coefficients in cm^2/g, linear coefficients in 1/mm.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..core.constants import ELECTRON_REST_ENERGY_MEV
from ..physics.tissue import mass_attenuation_cm2_per_g

_CROSS_SECTION_POINTS = 1024
_KINDS = ("photo", "incoh", "coh")


def sample_klein_nishina(energy_MeV: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Scattered photon energy and scattering-angle cosine for Compton scattering on free electrons.

    Kahn's rejection method for the Klein-Nishina cross-section, vectorised: every round draws three random
    numbers for the photons not yet accepted (acceptance ~60-75 %).

    Args:
        energy_MeV: incident photon energies, float32, shape (n,).
    Returns:
        (scattered energies in MeV, cos theta), float32, shape (n,) each.
    """
    k = energy_MeV / ELECTRON_REST_ENERGY_MEV
    ratio = torch.empty_like(energy_MeV)  # eta = E / E'
    pending = torch.arange(len(energy_MeV), device=energy_MeV.device)
    while len(pending):
        kp = k[pending]
        r1, r2, r3 = torch.rand((3, len(pending)), generator=generator, device=energy_MeV.device)
        first_branch = r1 <= (1.0 + 2.0 * kp) / (9.0 + 2.0 * kp)
        eta_first = 1.0 + 2.0 * kp * r2
        eta_second = (1.0 + 2.0 * kp) / (1.0 + 2.0 * kp * r2)
        cos_second = 1.0 - (eta_second - 1.0) / kp
        accept = torch.where(
            first_branch,
            r3 <= 4.0 * (1.0 / eta_first - 1.0 / (eta_first * eta_first)),
            r3 <= 0.5 * (cos_second * cos_second + 1.0 / eta_second),
        )
        eta = torch.where(first_branch, eta_first, eta_second)
        ratio[pending[accept]] = eta[accept]
        pending = pending[~accept]
    cos_theta = torch.clamp(1.0 - (ratio - 1.0) / k, -1.0, 1.0)
    return energy_MeV / ratio, cos_theta


def sample_rayleigh_cosines(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """cos theta from the Thomson distribution p(mu) = 3/8 (1 + mu^2) on [-1, 1], form factor neglected.

    Inverse of the cumulative 3/8 (mu + mu^3/3 + 4/3) = r: the real root of mu^3 + 3 mu + 4 - 8 r = 0,
    mu = c - 1/c with c = cbrt(a + sqrt(a^2 + 1)), a = 4 r - 2 (Cardano). Returns float32, shape (n,).
    """
    a = 4.0 * torch.rand(n, generator=generator, device=device) - 2.0
    c = torch.pow(a + torch.sqrt(a * a + 1.0), 1.0 / 3.0)
    return torch.clamp(c - 1.0 / c, -1.0, 1.0)


@functools.cache
def _mass_coefficient_table(materials: tuple[str, ...], min_MeV: float, max_MeV: float) -> np.ndarray:
    grid = np.geomspace(min_MeV, max_MeV, _CROSS_SECTION_POINTS)
    table = np.stack([[mass_attenuation_cm2_per_g(m, grid, kind) for kind in _KINDS] for m in materials])
    return np.ascontiguousarray(table.transpose(0, 2, 1))  # (material, energy, kind)


class PhotonCrossSections:
    """Mass coefficients (cm^2/g) of photoelectric, Compton and Rayleigh interactions per material.

    Tabulated on a log-energy grid from ``min_energy_MeV`` to ``max_energy_MeV`` (1024 points) and linearly
    interpolated in log energy; ``table`` has shape (n_materials, 1024, 3).
    """

    def __init__(self, materials: tuple[str, ...], min_energy_MeV: float, max_energy_MeV: float, device) -> None:
        self.table = torch.as_tensor(
            _mass_coefficient_table(tuple(materials), float(min_energy_MeV), float(max_energy_MeV)),
            dtype=torch.float32,
            device=device,
        )
        self.log_min = math.log(min_energy_MeV)
        self.log_step = math.log(max_energy_MeV / min_energy_MeV) / (_CROSS_SECTION_POINTS - 1)

    def _locate(self, energy_MeV: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        position = (torch.log(energy_MeV) - self.log_min) / self.log_step
        index = torch.clamp(position.floor().long(), 0, _CROSS_SECTION_POINTS - 2)
        return index, torch.clamp(position - index, 0.0, 1.0)

    def mass_coefficients(self, material: torch.Tensor, energy_MeV: torch.Tensor) -> torch.Tensor:
        """(photo, Compton, Rayleigh) mass coefficients in cm^2/g, shape (n, 3), for materials/energies (n,)."""
        index, weight = self._locate(energy_MeV)
        low, high = self.table[material, index], self.table[material, index + 1]
        return low + (high - low) * weight[:, None]

    def majorant_per_cm(self, max_density_per_material: torch.Tensor) -> torch.Tensor:
        """Majorant linear attenuation (1/cm) per energy bin, shape (1023,), for the given maximum densities."""
        total = self.table.sum(dim=2)
        per_bin = torch.maximum(total[:, :-1], total[:, 1:]) * max_density_per_material[:, None]
        return per_bin.max(dim=0).values * (1.0 + 1e-5)

    def bin_of(self, energy_MeV: torch.Tensor) -> torch.Tensor:
        return self._locate(energy_MeV)[0]
