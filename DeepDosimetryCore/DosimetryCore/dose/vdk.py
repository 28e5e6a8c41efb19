"""Dose rate by voxel dose kernel (VDK) convolution with density scaling, and by local energy deposition (LED).

VDK: activity per voxel convolved with the soft-tissue voxel S-value kernels, with one of two density
scalings (:data:`DENSITY_SCALINGS`):

- ``"electrons"`` (default): dose rate = (A (*) beta kernel) x 1.04 g/cm^3 / local density + (A (*) photon
  kernel). The electron energy is deposited within about a millimetre of its release, so its dose per mass
  scales with the inverse density of the voxel; the photon dose per mass at a point depends on the photon
  fluence, not on the local density, and is left unscaled. In air outside the body this gives the photon
  dose only, instead of 1.04 / 0.0012 = 870 times the tissue dose.
- ``"total"``: the variant of Li et al. (the residual dose-rate CNN paper, and its VDK baseline):
  dose rate = (A (*) total kernel) x 1.04 g/cm^3 / local CT density. It overestimates the photon dose in
  lung next to active soft tissue by about 1.04 / density and makes air next to the body glow.

Both FFTs share the transform of the activity; the FFT is sized to the 5-smooth length N + K//2 per axis
(:mod:`DosimetryCore.dose.convolution`).

LED: the energy released per decay is absorbed in the voxel of the decay, dose rate = A x E / density.
By default E is the decay-electron energy (beta + conversion + Auger: 0.1479 MeV per decay for 177Lu) and
the photons (0.0351 MeV) are taken to escape the voxel, since their mean free path (~7 cm at 208 keV) is far
larger than a voxel; ``include_photons=True`` deposits all emitted energy (0.1830 MeV), an upper bound.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.constants import BQ_PER_MBQ, G_PER_KG, J_PER_MEV, MGY_PER_GY, MM_PER_CM, SECONDS_PER_HOUR
from ..core.device import resolve_device
from ..core.validation import check_finite, check_finite_nonnegative
from ..physics.nuclides import load_nuclide
from .convolution import fft_convolve_many
from .kernels import KERNEL_DENSITY_G_PER_CM3, VoxelKernel

ArrayLike = np.ndarray | torch.Tensor

DENSITY_SCALINGS = ("electrons", "total")
"""VDK density scalings: of the electron (beta) kernel's dose only (default), or of the whole kernel (Li et al.)."""


def _tensor(values: ArrayLike, name: str, device: torch.device) -> torch.Tensor:
    tensor = values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    tensor = tensor.to(device=device, dtype=torch.float32)
    if tensor.ndim != 3:
        raise ValueError(f"{name}: expected a 3D array (z, y, x), got shape {tuple(tensor.shape)}")
    return tensor


def _inputs(
    activity: ArrayLike, density: ArrayLike, device, check_values: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Activity and density as float32 tensors (z, y, x) on ``device``.

    ``check_values``: refuse NaN, infinite or negative activity and density <= 0; the image entry
    point :func:`DosimetryCore.dose.compute_dose_rate`, which has checked its images, passes False.
    """
    device = resolve_device(device)
    activity_t, density_t = _tensor(activity, "activity", device), _tensor(density, "density", device)
    if activity_t.shape != density_t.shape:
        raise ValueError(f"activity, density: shapes differ: {tuple(activity_t.shape)} vs {tuple(density_t.shape)}")
    if check_values:
        check_finite_nonnegative(activity_t, "activity")
        check_finite(density_t, "density")
        if bool((density_t <= 0).any()):
            raise ValueError("density: must be > 0 everywhere")
    return activity_t, density_t


def vdk_dose_rate(
    activity_Bq_per_mL: ArrayLike,
    density_g_per_cm3: ArrayLike,
    kernel: VoxelKernel,
    spacing_mm: tuple[float, float, float],
    *,
    density_scaling: str = "electrons",
    device: str | torch.device | None = None,
    check_values: bool = True,
) -> torch.Tensor:
    """Absorbed dose rate (Gy/h) by kernel convolution with density scaling (see the module docstring).

    Args:
        activity_Bq_per_mL: activity concentration, shape (z, y, x), >= 0.
        density_g_per_cm3: CT-derived density, same shape, > 0.
        kernel: voxel S-value kernel of the same voxel size (mGy/(MBq*s), soft tissue at 1.04 g/cm^3).
        spacing_mm: voxel size (z, y, x) in mm; must match the kernel's.
        density_scaling: one of :data:`DENSITY_SCALINGS`.
        device: torch device (None: cuda when available).
        check_values: check the values (False only for inputs a caller has checked).
    Returns:
        float32 tensor (z, y, x) on ``device``.
    """
    if density_scaling not in DENSITY_SCALINGS:
        raise ValueError(f"density_scaling: {density_scaling!r} is not one of {', '.join(DENSITY_SCALINGS)}")
    if not np.allclose(kernel.spacing_mm, spacing_mm, rtol=1e-3, atol=1e-4):
        raise ValueError(f"kernel: made for voxels of {kernel.spacing_mm} mm, the activity has {tuple(spacing_mm)} mm")
    activity, density = _inputs(activity_Bq_per_mL, density_g_per_cm3, device, check_values)
    voxel_ml = math.prod(spacing_mm) / MM_PER_CM**3
    activity_MBq = activity * (voxel_ml / BQ_PER_MBQ)
    to_Gy_per_h = SECONDS_PER_HOUR / MGY_PER_GY
    scaling = KERNEL_DENSITY_G_PER_CM3 / density

    def as_tensor(values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float32, device=activity.device)

    if density_scaling == "total":
        (total,) = fft_convolve_many(activity_MBq, [as_tensor(kernel.total())])
        return torch.clamp(total, min=0.0) * to_Gy_per_h * scaling
    beta, photon = fft_convolve_many(activity_MBq, [as_tensor(kernel.beta), as_tensor(kernel.photon)])
    return (torch.clamp(beta, min=0.0) * scaling + torch.clamp(photon, min=0.0)) * to_Gy_per_h


def local_deposition_MeV_per_decay(nuclide: str = "Lu-177", include_photons: bool = False) -> float:
    """Energy per decay (MeV) that LED deposits: electrons, plus photons when ``include_photons``."""
    data = load_nuclide(nuclide)
    electrons = data.mean_energy_per_decay_MeV("beta") + data.mean_energy_per_decay_MeV("electron")
    return electrons + (data.mean_energy_per_decay_MeV("photon") if include_photons else 0.0)


def led_dose_rate(
    activity_Bq_per_mL: ArrayLike,
    density_g_per_cm3: ArrayLike,
    *,
    nuclide: str = "Lu-177",
    include_photons: bool = False,
    device: str | torch.device | None = None,
    check_values: bool = True,
) -> torch.Tensor:
    """Absorbed dose rate (Gy/h) by local energy deposition: A [Bq/mL] x E [J] / density [kg/mL] x 3600.

    Args:
        activity_Bq_per_mL: activity concentration, shape (z, y, x), >= 0.
        density_g_per_cm3: density, same shape, > 0.
        nuclide: nuclide name.
        include_photons: also deposit the photon energy (see module docstring).
        device: torch device.
        check_values: check the values (False only for inputs a caller has checked).
    Returns:
        float32 tensor (z, y, x).
    """
    activity, density = _inputs(activity_Bq_per_mL, density_g_per_cm3, device, check_values)
    joule_per_decay = local_deposition_MeV_per_decay(nuclide, include_photons) * J_PER_MEV
    return activity * (joule_per_decay * SECONDS_PER_HOUR * G_PER_KG) / density
