"""CT number (HU) -> tissue properties: mass density, linear attenuation, material class.

Every function takes a numpy array or a torch tensor of any shape (or a Python number) and returns the
same kind of object with the same shape, on the same device; nothing loops over voxels. Integer input is
converted to floating point (float64 for numpy, torch's default dtype for tensors); floating input keeps
its dtype. NaN or infinite HU raise a ValueError.

Sources:
- Density: the bilinear phantom calibration of Li, Fessler, Mikell, Wilderman, Dewaraja (deep residual
  network for voxel dosimetry, seed 002), eq. 1.
- Compositions and nominal densities: ICRU Report 44 (1989) tissues, air and water, as listed in Table 2
  of J. H. Hubbell and S. M. Seltzer, "Tables of X-Ray Mass Attenuation Coefficients and Mass
  Energy-Absorption Coefficients", NIST Standard Reference Database 126 (NISTIR 5632, 1995/2004).
- Mass attenuation coefficients: ``xraydb`` (``mu_elam``: tables of W. T. Elam, B. D. Ravel and
  J. R. Sieber, Radiat. Phys. Chem. 63 (2002) 121-128), total including coherent scattering, mixed by mass
  fraction. For liquid water they agree with NIST SRD 126 Table 4 (0.1707, 0.1505, 0.1370, 0.1186 cm^2/g
  at 100, 150, 200, 300 keV) to better than 0.1 %. The Elam tables are used from 1 keV to 800 keV.
- HU intervals of the material classes: W. Schneider, T. Bortfeld, W. Schlegel, Phys. Med. Biol. 45
  (2000) 459-478, as tabulated in GATE's ``Schneider2000MaterialsTable.txt`` (see
  :data:`MATERIAL_HU_LOWER_BOUNDS`).
"""

import functools
from dataclasses import dataclass

import numpy as np
import torch
import xraydb

from DosimetryCore.core.constants import EV_PER_MEV

ArrayOrTensor = np.ndarray | torch.Tensor | float | int

# Li et al. eq. 1: density (g/cm^3) = slope * HU + intercept, one line for HU <= 0 and one above.
DENSITY_SLOPE_LOW_PER_HU = 0.00108
DENSITY_INTERCEPT_LOW_G_PER_CM3 = 1.02351
DENSITY_SLOPE_HIGH_PER_HU = 0.00069
DENSITY_INTERCEPT_HIGH_G_PER_CM3 = 1.03107

AIR_HU = -1000.0
WATER_HU = 0.0


@dataclass(frozen=True)
class Material:
    """A material by elemental composition.

    Attributes:
        name: material key, e.g. ``"soft_tissue"``.
        density_g_per_cm3: nominal density of the reference material (the voxel density comes from the CT).
        mass_fractions: ``((element symbol, mass fraction), ...)``, fractions summing to 1.
        source: where the composition and density come from.
    """

    name: str
    density_g_per_cm3: float
    mass_fractions: tuple[tuple[str, float], ...]
    source: str


_NIST_TABLE_2 = "NIST SRD 126 (Hubbell & Seltzer) Table 2"

MATERIALS: dict[str, Material] = {
    "air": Material(
        "air",
        1.205e-3,
        (("C", 0.000124), ("N", 0.755268), ("O", 0.231781), ("Ar", 0.012827)),
        f"{_NIST_TABLE_2}, 'Air, Dry (near sea level)'",
    ),
    "lung": Material(
        "lung",
        1.05,
        (
            ("H", 0.103), ("C", 0.105), ("N", 0.031), ("O", 0.749), ("Na", 0.002),
            ("P", 0.002), ("S", 0.003), ("Cl", 0.003), ("K", 0.002),
        ),
        f"{_NIST_TABLE_2}, 'Lung Tissue (ICRU-44)'",
    ),
    "adipose": Material(
        "adipose",
        0.95,
        (("H", 0.114), ("C", 0.598), ("N", 0.007), ("O", 0.278), ("Na", 0.001), ("S", 0.001), ("Cl", 0.001)),
        f"{_NIST_TABLE_2}, 'Adipose Tissue (ICRU-44)'",
    ),
    "soft_tissue": Material(
        "soft_tissue",
        1.06,
        (
            ("H", 0.102), ("C", 0.143), ("N", 0.034), ("O", 0.708), ("Na", 0.002),
            ("P", 0.003), ("S", 0.003), ("Cl", 0.002), ("K", 0.003),
        ),
        f"{_NIST_TABLE_2}, 'Tissue, Soft (ICRU-44)'",
    ),
    "bone": Material(
        "bone",
        1.92,
        (
            ("H", 0.034), ("C", 0.155), ("N", 0.042), ("O", 0.435), ("Na", 0.001),
            ("Mg", 0.002), ("P", 0.103), ("S", 0.003), ("Ca", 0.225),
        ),
        f"{_NIST_TABLE_2}, 'Bone, Cortical (ICRU-44)'",
    ),
    "water": Material("water", 1.0, (("H", 0.111894), ("O", 0.888106)), f"{_NIST_TABLE_2}, 'Water, Liquid'"),
}  # fmt: skip

AIR_DENSITY_G_PER_CM3 = MATERIALS["air"].density_g_per_cm3

# HU of cortical bone for the attenuation line above water: the HU at which the density calibration above
# (Li et al.) reaches the ICRU-44 cortical-bone density 1.92 g/cm^3, about 1288 HU, so that density and
# attenuation maps of one CT agree. (In the Schneider et al. 2000 table below, the class with the Ca and P
# fractions of cortical bone starts at 1500 HU; pass ``bone_hu=`` to use a scanner's own value.)
CORTICAL_BONE_HU = (MATERIALS["bone"].density_g_per_cm3 - DENSITY_INTERCEPT_HIGH_G_PER_CM3) / DENSITY_SLOPE_HIGH_PER_HU

# Material classes in index order, and the lowest HU of every class after the first. From the HU intervals
# of Schneider et al. 2000 (GATE Schneider2000MaterialsTable.txt): Air below -950; Lung from -950; the
# adipose-rich mixtures AT_AG_SI1-3 from -120; AT_AG_SI4-5, soft and connective tissue from -22; bone
# (Marrow_Bone01 onwards) from 120 HU.
HU_MATERIALS = ("air", "lung", "adipose", "soft_tissue", "bone")
MATERIAL_HU_LOWER_BOUNDS = (-950.0, -120.0, -22.0, 120.0)

# Energy range of the attenuation data used here (MeV): NIST tables start at 1 keV; xraydb warns that the
# Elam tables are unreliable above 800 keV.
MIN_ENERGY_MEV = 1.0e-3
MAX_ENERGY_MEV = 0.8

ATTENUATION_KINDS = ("total", "photo", "incoh", "coh")


def density_g_per_cm3_from_hu(hu: ArrayOrTensor) -> np.ndarray | torch.Tensor:
    """Mass density (g/cm^3) from CT number (HU), Li et al. eq. 1, clipped below at the density of air.

    density = 0.00108 * HU + 1.02351 for HU <= 0 and 0.00069 * HU + 1.03107 for HU > 0, as published
    (the two lines differ by 0.00756 g/cm^3 at HU = 0); never below 1.205e-3 g/cm^3 (dry air).

    Args:
        hu: CT numbers, any shape, numpy or torch.
    Returns:
        densities, same shape and kind as ``hu``.
    """
    hu = _checked_hu(hu)
    low = DENSITY_SLOPE_LOW_PER_HU * hu + DENSITY_INTERCEPT_LOW_G_PER_CM3
    high = DENSITY_SLOPE_HIGH_PER_HU * hu + DENSITY_INTERCEPT_HIGH_G_PER_CM3
    return _clamp_min(_where(hu <= WATER_HU, low, high), AIR_DENSITY_G_PER_CM3)


def mu_per_cm_from_hu(
    hu: ArrayOrTensor, energy_MeV: float, bone_hu: float = CORTICAL_BONE_HU
) -> np.ndarray | torch.Tensor:
    """Linear attenuation coefficient (1/cm) at photon energy ``energy_MeV`` from CT number (HU).

    Bilinear: a line through air (HU -1000) and water (HU 0), and a line through water and ICRU-44 cortical
    bone placed at ``bone_hu`` (default :data:`CORTICAL_BONE_HU`), extrapolated above it. The anchor values
    are nominal density x total mass attenuation coefficient (with coherent scattering) of each material.
    HU below -1000 are treated as air.

    Args:
        hu: CT numbers, any shape, numpy or torch.
        energy_MeV: photon energy in MeV, within [0.001, 0.8].
        bone_hu: CT number of cortical bone (> 0).
    Returns:
        linear attenuation coefficients in 1/cm, same shape and kind as ``hu``.
    """
    if not (np.isfinite(bone_hu) and bone_hu > WATER_HU):
        raise ValueError(f"bone_hu: must be a finite CT number above water (0 HU), got {bone_hu!r}")
    mu_air, mu_water, mu_bone = _anchor_mu_per_cm(_checked_energy_scalar(energy_MeV))
    hu = _clamp_min(_checked_hu(hu), AIR_HU)
    below = mu_water + (mu_water - mu_air) * (hu - WATER_HU) / (WATER_HU - AIR_HU)
    above = mu_water + (mu_bone - mu_water) * (hu - WATER_HU) / (bone_hu - WATER_HU)
    return _where(hu <= WATER_HU, below, above)


def material_index_from_hu(hu: ArrayOrTensor) -> np.ndarray | torch.Tensor:
    """Material class of each voxel: an index into :data:`HU_MATERIALS` (air, lung, adipose, soft tissue, bone).

    Class i covers ``MATERIAL_HU_LOWER_BOUNDS[i-1] <= HU < MATERIAL_HU_LOWER_BOUNDS[i]``.

    Args:
        hu: CT numbers, any shape, numpy or torch.
    Returns:
        integer indices (numpy intp, or torch int64 on the input's device), same shape as ``hu``.
    """
    hu = _checked_hu(hu)
    if isinstance(hu, torch.Tensor):
        bounds = torch.tensor(MATERIAL_HU_LOWER_BOUNDS, dtype=hu.dtype, device=hu.device)
        return torch.bucketize(hu, bounds, right=True)
    return np.searchsorted(np.asarray(MATERIAL_HU_LOWER_BOUNDS), hu, side="right")


def mass_attenuation_cm2_per_g(material: str, energy_MeV: ArrayOrTensor, kind: str = "total") -> np.ndarray:
    """Mass attenuation coefficient mu/rho (cm^2/g) of a material from :data:`MATERIALS` at given energies.

    Args:
        material: key of :data:`MATERIALS`, e.g. ``"soft_tissue"``.
        energy_MeV: photon energies in MeV, any shape, within [0.001, 0.8].
        kind: ``"total"`` (with coherent scattering), ``"photo"`` (photoelectric), ``"incoh"`` (Compton) or
            ``"coh"`` (Rayleigh).
    Returns:
        float64 array with the shape of ``energy_MeV``.
    """
    if material not in MATERIALS:
        raise ValueError(f"material: {material!r} is not known; choose one of {', '.join(MATERIALS)}")
    if kind not in ATTENUATION_KINDS:
        raise ValueError(f"kind: {kind!r} is not an attenuation kind; choose one of {', '.join(ATTENUATION_KINDS)}")
    energy_eV = _checked_energies(energy_MeV) * EV_PER_MEV
    flat = energy_eV.reshape(-1)
    if flat.size == 0:
        return np.zeros(energy_eV.shape)
    total = sum(
        fraction * np.asarray(xraydb.mu_elam(symbol, flat, kind=kind), dtype=np.float64)
        for symbol, fraction in MATERIALS[material].mass_fractions
    )
    return total.reshape(energy_eV.shape)


def mass_attenuation_table_cm2_per_g(energy_MeV: ArrayOrTensor, kind: str = "total") -> np.ndarray:
    """mu/rho (cm^2/g) of every material class of :data:`HU_MATERIALS`, for a Monte Carlo lookup table.

    Returns:
        float64 array of shape (len(HU_MATERIALS), *shape of energy_MeV); row i is material index i.
    """
    return np.stack([mass_attenuation_cm2_per_g(name, energy_MeV, kind) for name in HU_MATERIALS])


@functools.lru_cache(maxsize=256)
def _anchor_mu_per_cm(energy_MeV: float) -> tuple[float, float, float]:
    """Linear attenuation (1/cm) of air, water and cortical bone at their nominal densities."""
    return tuple(
        MATERIALS[name].density_g_per_cm3 * float(mass_attenuation_cm2_per_g(name, energy_MeV))
        for name in ("air", "water", "bone")
    )


def _checked_hu(hu: ArrayOrTensor) -> np.ndarray | torch.Tensor:
    if isinstance(hu, torch.Tensor):
        values = hu if hu.is_floating_point() else hu.to(torch.get_default_dtype())
        finite = bool(torch.isfinite(values).all())
    else:
        values = np.asarray(hu)
        if values.dtype.kind not in "biuf":
            raise ValueError(f"hu: expected numeric CT numbers, got an array of dtype {values.dtype}")
        if values.dtype.kind != "f":
            values = values.astype(np.float64)
        finite = bool(np.isfinite(values).all())
    if not finite:
        raise ValueError("hu: contains NaN or infinite CT numbers")
    return values


def _checked_energies(energy_MeV: ArrayOrTensor) -> np.ndarray:
    if isinstance(energy_MeV, torch.Tensor):
        energy_MeV = energy_MeV.detach().cpu().numpy()
    energies = np.asarray(energy_MeV, dtype=np.float64)
    if not np.isfinite(energies).all() or (energies < MIN_ENERGY_MEV).any() or (energies > MAX_ENERGY_MEV).any():
        raise ValueError(
            f"energy_MeV: photon energies must lie in [{MIN_ENERGY_MEV}, {MAX_ENERGY_MEV}] MeV, "
            f"got values from {energies.min()} to {energies.max()}"
        )
    return energies


def _checked_energy_scalar(energy_MeV: float) -> float:
    energies = _checked_energies(energy_MeV)
    if energies.size != 1:
        raise ValueError(f"energy_MeV: expected one photon energy, got {energies.size}")
    return float(energies.reshape(()))


def _where(condition, if_true, if_false):
    if isinstance(condition, torch.Tensor):
        return torch.where(condition, if_true, if_false)
    return np.where(condition, if_true, if_false)


def _clamp_min(values, minimum: float):
    if isinstance(values, torch.Tensor):
        return torch.clamp(values, min=minimum)
    return np.maximum(values, minimum)
