"""Absorbed dose rate for 177Lu: Monte Carlo, voxel S-value kernels, kernel convolution (VDK) and local deposition.

- :mod:`.montecarlo`: photon Monte Carlo (Woodcock tracking, Klein-Nishina, Rayleigh) on CT voxel grids.
- :mod:`.electrons`: condensed-history electron walk (CSDA, screened-Rutherford multiple scattering) for the
  beta point kernel; :mod:`.electron_physics`: the stopping and scattering data of water it uses.
- :mod:`.kernels`: voxel S-value kernels (beta + photon) in mGy/(MBq*s), cached under Resources/Kernels.
- :mod:`.vdk`: kernel convolution with seed-002 density scaling, and local energy deposition.
- :mod:`.images`: the SimpleITK entry point for all three methods and the per-segment dose-rate table.
"""

from ..core.units import DOSE_RATE_UNIT
from .images import (
    METHODS,
    DoseRateMap,
    check_dose_inputs,
    compute_dose_rate,
    ct_on_activity_grid,
    segment_table,
    write_table_csv,
)
from .kernels import KERNEL_UNIT, VoxelKernel, generate_kernel, kernel_image, voxel_kernel
from .mc_dose_rate import EnergyBalance, MonteCarloResult, simulate_dose_rate
from .montecarlo import Medium, medium_from_hu
from .vdk import led_dose_rate, vdk_dose_rate

__all__ = [
    "DOSE_RATE_UNIT",
    "KERNEL_UNIT",
    "METHODS",
    "DoseRateMap",
    "EnergyBalance",
    "Medium",
    "MonteCarloResult",
    "VoxelKernel",
    "check_dose_inputs",
    "compute_dose_rate",
    "ct_on_activity_grid",
    "generate_kernel",
    "kernel_image",
    "led_dose_rate",
    "medium_from_hu",
    "segment_table",
    "simulate_dose_rate",
    "vdk_dose_rate",
    "voxel_kernel",
    "write_table_csv",
]
