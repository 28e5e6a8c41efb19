"""Parallel-hole collimators and their Gaussian collimator-detector response.

Collimator-detector response
----------------------------
Geometric resolution of a parallel-hole collimator (Cherry, Sorenson & Phelps, *Physics in Nuclear
Medicine*, 4th ed., 2012, ch. 14, parallel-hole collimator performance):
``R_g = D * (L_eff + d) / L_eff`` (FWHM), with hole diameter ``D``, distance ``d`` from the collimator
face, and effective hole length ``L_eff = L - 2 / mu_Pb`` (``mu_Pb``: linear attenuation coefficient of
lead at the photon energy). The system resolution adds the intrinsic resolution ``R_i`` in quadrature,
``R_s = sqrt(R_g^2 + R_i^2)``. With ``sigma = FWHM / 2.3548``:
``sigma(d) = sqrt((a d + b)^2 + c^2)``, ``a = D / (2.3548 L_eff)``, ``b = D / 2.3548``,
``c = R_i / 2.3548``. Septal penetration and collimator scatter are not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import xraydb

from DosimetryCore.core.constants import EV_PER_MEV, MEV_PER_KEV, MM_PER_CM

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
"""FWHM of a Gaussian in units of its standard deviation (2.3548)."""

LEAD_DENSITY_G_PER_CM3 = 11.35
"""Density of lead (g/cm^3)."""

LU177_PHOTOPEAK_KEV = 208.4
"""Main imaging photopeak of 177Lu (keV)."""

LEAD_ENERGY_RANGE_KEV = (100.0, 500.0)
"""Photon energies (keV) the collimator model is used at: above lead's K edge (88 keV), up to 500 keV."""


@dataclass(frozen=True)
class Collimator:
    """Parallel-hole collimator geometry (mm), from the vendor's data sheet.

    ``septal_thickness_mm`` documents the preset; the Gaussian response model uses only the hole
    diameter and length (septal penetration is not modelled).
    """

    name: str
    hole_diameter_mm: float
    septal_thickness_mm: float
    hole_length_mm: float


COLLIMATORS: dict[str, Collimator] = {
    # Siemens Symbia / Intevo medium-energy low-penetration (MELP): hexagonal holes 2.94 mm
    # (flat to flat), septa 1.14 mm, length 40.64 mm (Siemens Symbia collimator specifications; same
    # values as SIMIND's collimator table entry SY-ME and OpenGATE's Intevo MELP model).
    "SIEMENS-MELP": Collimator("Siemens MELP", 2.94, 1.14, 40.64),
    # GE Infinia / Discovery NM/CT 670 medium-energy general-purpose (MEGP): hexagonal holes 3.0 mm,
    # septa 1.05 mm, length 58 mm (GE collimator specifications; SIMIND's collimator table entry GI-MEGP).
    "GE-MEGP": Collimator("GE MEGP", 3.0, 1.05, 58.0),
}
"""Collimator presets by name."""


def lead_mu_per_mm(energy_keV: float) -> float:
    """Linear attenuation coefficient of lead (1/mm) at ``energy_keV`` (100-500 keV).

    The total mass attenuation coefficient (with coherent scattering) of ``xraydb`` (Elam, Ravel &
    Sieber tables, as for the tissues in :mod:`DosimetryCore.physics.tissue`) times the density of
    lead, 11.35 g/cm^3.
    """
    low, high = LEAD_ENERGY_RANGE_KEV
    if not low <= energy_keV <= high:
        raise ValueError(f"energy_keV: expected {low:g} to {high:g} keV, got {energy_keV}")
    mass_cm2_per_g = float(xraydb.mu_elam("Pb", energy_keV * MEV_PER_KEV * EV_PER_MEV, kind="total"))
    return mass_cm2_per_g * LEAD_DENSITY_G_PER_CM3 / MM_PER_CM


@dataclass(frozen=True)
class DetectorResponse:
    """Gaussian collimator-detector response ``sigma(d) = sqrt((slope * d + intercept)^2 + intrinsic^2)``.

    ``d`` is the distance (mm) from the collimator face; sigma in mm.
    """

    slope: float
    intercept_mm: float
    intrinsic_sigma_mm: float

    def sigma_mm(self, distance_mm: torch.Tensor | float) -> torch.Tensor | float:
        """Standard deviation (mm) of the response at ``distance_mm`` from the collimator face."""
        geometric = self.slope * distance_mm + self.intercept_mm
        return (geometric * geometric + self.intrinsic_sigma_mm**2) ** 0.5

    def fwhm_mm(self, distance_mm: torch.Tensor | float) -> torch.Tensor | float:
        """Full width at half maximum (mm) of the response at ``distance_mm`` from the collimator face."""
        return FWHM_PER_SIGMA * self.sigma_mm(distance_mm)


def collimator_response(
    collimator: Collimator | str,
    energy_keV: float = LU177_PHOTOPEAK_KEV,
    intrinsic_fwhm_mm: float = 3.8,
) -> DetectorResponse:
    """The Gaussian response of ``collimator`` (a :class:`Collimator` or a :data:`COLLIMATORS` key).

    ``R_g(d) = D (L_eff + d) / L_eff`` with ``L_eff = L - 2 / mu_Pb(energy_keV)`` (Cherry, Sorenson &
    Phelps), plus the intrinsic resolution ``intrinsic_fwhm_mm`` in quadrature. The default 3.8 mm is
    the intrinsic FWHM specified for 9.5 mm (3/8") NaI(Tl) detectors at 140 keV (Siemens Symbia/Intevo).
    """
    if isinstance(collimator, str):
        if collimator not in COLLIMATORS:
            raise ValueError(f"collimator: expected one of {sorted(COLLIMATORS)}, got {collimator!r}")
        collimator = COLLIMATORS[collimator]
    if intrinsic_fwhm_mm < 0:
        raise ValueError(f"intrinsic_fwhm_mm: expected a non-negative FWHM in mm, got {intrinsic_fwhm_mm}")
    effective_length = collimator.hole_length_mm - 2.0 / lead_mu_per_mm(energy_keV)
    if collimator.hole_diameter_mm <= 0 or effective_length <= 0:
        raise ValueError(f"collimator: hole diameter and effective length must be positive, got {collimator}")
    return DetectorResponse(
        slope=collimator.hole_diameter_mm / (FWHM_PER_SIGMA * effective_length),
        intercept_mm=collimator.hole_diameter_mm / FWHM_PER_SIGMA,
        intrinsic_sigma_mm=intrinsic_fwhm_mm / FWHM_PER_SIGMA,
    )
