"""Monte Carlo absorbed dose rate (Gy/h) of an activity map in a CT medium.

Photons are transported; electrons deposit by the beta kernel or locally.

See :mod:`DosimetryCore.dose.montecarlo` for the engine and its physics.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..core.constants import G_PER_KG, J_PER_MEV, SECONDS_PER_HOUR
from ..core.device import resolve_device
from ..core.progress import ProgressCallback, no_progress
from ..core.validation import check_finite_nonnegative
from ..physics.nuclides import load_nuclide
from .convolution import fft_convolve
from .directions import isotropic_directions
from .electrons import beta_point_kernel, beta_voxel_fractions
from .montecarlo import (
    DEFAULT_BATCHES,
    DEFAULT_PHOTON_HISTORIES,
    DEFAULT_SEED,
    ELECTRON_TRANSPORT_MODES,
    ENGINE_VERSION,
    PHOTON_CUTOFF_MEV,
    Medium,
    PhotonLines,
    sample_decay_positions,
    transport_photons,
)
from .photons import PhotonCrossSections


@dataclass(frozen=True)
class EnergyBalance:
    """Energy bookkeeping in MeV per decay (averaged over all decays of the activity map).

    ``photon_*``: transported photons (emitted: as sampled); ``local_*``: energy released without photon
    transport (decay electrons and photon lines below the cut-off; escaped: carried out of the grid by the
    beta kernel). ``escaped`` includes energy deposited in an infinite medium beyond the grid.
    ``nominal_emitted_MeV`` is the decay-data value; the sampled ``emitted_MeV`` differs by photon sampling noise.
    """

    nominal_emitted_MeV: float
    photon_emitted_MeV: float
    photon_deposited_MeV: float
    photon_escaped_MeV: float
    local_emitted_MeV: float
    local_deposited_MeV: float
    local_escaped_MeV: float

    @property
    def emitted_MeV(self) -> float:
        return self.photon_emitted_MeV + self.local_emitted_MeV

    @property
    def deposited_MeV(self) -> float:
        return self.photon_deposited_MeV + self.local_deposited_MeV

    @property
    def escaped_MeV(self) -> float:
        return self.photon_escaped_MeV + self.local_escaped_MeV

    def as_dict(self) -> dict[str, float]:
        values = asdict(self)
        values.update(emitted_MeV=self.emitted_MeV, deposited_MeV=self.deposited_MeV, escaped_MeV=self.escaped_MeV)
        return values


@dataclass(frozen=True)
class MonteCarloResult:
    """Monte Carlo dose rate and its bookkeeping.

    Attributes:
        dose_rate_Gy_per_h: absorbed dose rate at the time of the activity map, float32 tensor (z, y, x).
        relative_uncertainty: relative standard error (1 sd, fraction) of the dose rate per voxel, from the
            batches; 0 where the dose rate is 0. float32 tensor (z, y, x).
        energy: energy bookkeeping per decay.
        total_activity_Bq: activity in the map.
        photon_histories, batches, seed, photon_cutoff_MeV, electron_transport: the run's settings.
        nuclide, nuclide_source: decay data used; seconds: wall time.
    """

    dose_rate_Gy_per_h: torch.Tensor
    relative_uncertainty: torch.Tensor
    energy: EnergyBalance
    total_activity_Bq: float
    photon_histories: int
    batches: int
    seed: int
    photon_cutoff_MeV: float
    electron_transport: str
    nuclide: str
    nuclide_source: str
    seconds: float

    def provenance(self) -> dict[str, Any]:
        """JSON-serialisable description of the run (for image metadata)."""
        return {
            "method": "mc",
            "engine": f"DosimetryCore.dose.montecarlo {ENGINE_VERSION}",
            "nuclide": self.nuclide,
            "nuclide_source": self.nuclide_source,
            "photon_histories": self.photon_histories,
            "batches": self.batches,
            "seed": self.seed,
            "photon_cutoff_MeV": self.photon_cutoff_MeV,
            "electron_transport": self.electron_transport,
            "total_activity_Bq": self.total_activity_Bq,
            "energy_MeV_per_decay": self.energy.as_dict(),
            "seconds": round(self.seconds, 2),
        }


def simulate_dose_rate(
    activity_Bq_per_mL: np.ndarray | torch.Tensor,
    medium: Medium,
    *,
    nuclide: str = "Lu-177",
    photon_histories: int = DEFAULT_PHOTON_HISTORIES,
    batches: int = DEFAULT_BATCHES,
    seed: int = DEFAULT_SEED,
    photon_cutoff_MeV: float = PHOTON_CUTOFF_MEV,
    electron_transport: str = "kernel",
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> MonteCarloResult:
    """Absorbed dose rate (Gy/h) of an activity map in a voxelised medium, by Monte Carlo (see module docstring).

    Args:
        activity_Bq_per_mL: activity concentration, shape (z, y, x) equal to the medium's, finite, >= 0, not all 0.
        medium: materials and densities (e.g. :func:`medium_from_hu`).
        nuclide: nuclide name.
        photon_histories: photon histories in total (rounded up to a multiple of ``batches``).
        batches: independent batches for the uncertainty (>= 2).
        seed: seed of the torch generator; the same seed on the same device reproduces the result exactly.
        photon_cutoff_MeV: photon emission and transport cut-off.
        electron_transport: ``"kernel"`` or ``"local"`` (see module docstring).
        device: torch device (None: cuda when available).
        progress: ``progress(fraction, message)`` callback, called after every batch.
    """
    started = time.perf_counter()
    device = resolve_device(device)
    progress = progress or no_progress
    _check_settings(photon_histories, batches, electron_transport)
    medium = medium.to(device)
    activity = _checked_activity(activity_Bq_per_mL, medium.shape, device)
    decays_per_voxel = activity * medium.voxel_volume_ml  # Bq
    total_Bq = float(decays_per_voxel.sum())
    if total_Bq <= 0:
        raise ValueError("activity: the activity map is zero everywhere; there is nothing to simulate")
    data = load_nuclide(nuclide)
    lines = PhotonLines.of(data, photon_cutoff_MeV)
    per_batch = -(-photon_histories // batches)
    photon_MeV_per_history, variance, photon_summary = _photon_batches(
        decays_per_voxel, medium, lines, per_batch, batches, seed, photon_cutoff_MeV, progress
    )
    local_MeV_per_decay = data.mean_energy_per_decay_MeV("beta") + data.mean_energy_per_decay_MeV("electron")
    local_MeV_per_decay += lines.local_MeV_per_decay
    electron_MeV_per_s = _electron_energy(decays_per_voxel * local_MeV_per_decay, medium, data.name, electron_transport)
    photon_scale = lines.photons_per_decay * total_Bq  # photons emitted per second: x MeV per history = MeV/s
    energy_MeV_per_s = photon_MeV_per_history * photon_scale + electron_MeV_per_s
    mass_kg = (medium.density_g_per_cm3.double() * medium.voxel_volume_ml) / G_PER_KG
    to_Gy_per_h = torch.where(mass_kg > 0, J_PER_MEV * SECONDS_PER_HOUR / mass_kg, torch.zeros_like(mass_kg))
    dose = energy_MeV_per_s * to_Gy_per_h
    sigma = torch.sqrt(torch.clamp(variance, min=0.0)) * photon_scale
    relative = torch.where(energy_MeV_per_s > 0, sigma / energy_MeV_per_s, torch.zeros_like(sigma))
    local_deposited = float(electron_MeV_per_s.sum()) / total_Bq
    balance = EnergyBalance(
        nominal_emitted_MeV=data.mean_energy_per_decay_MeV("total"),
        photon_emitted_MeV=photon_summary["emitted"] * lines.photons_per_decay,
        photon_deposited_MeV=float(photon_MeV_per_history.sum()) * lines.photons_per_decay,
        photon_escaped_MeV=photon_summary["escaped"] * lines.photons_per_decay,
        local_emitted_MeV=local_MeV_per_decay,
        local_deposited_MeV=local_deposited,
        local_escaped_MeV=local_MeV_per_decay - local_deposited,
    )
    return MonteCarloResult(
        dose_rate_Gy_per_h=dose.float(),
        relative_uncertainty=relative.float(),
        energy=balance,
        total_activity_Bq=total_Bq,
        photon_histories=per_batch * batches,
        batches=batches,
        seed=seed,
        photon_cutoff_MeV=photon_cutoff_MeV,
        electron_transport=electron_transport,
        nuclide=data.name,
        nuclide_source=data.source,
        seconds=time.perf_counter() - started,
    )


def _check_settings(photon_histories: int, batches: int, electron_transport: str) -> None:
    if int(batches) < 2:
        raise ValueError(f"batches: at least 2 are needed for an uncertainty, got {batches}")
    if int(photon_histories) < int(batches):
        raise ValueError(f"photon_histories: need at least one per batch, got {photon_histories} for {batches}")
    if electron_transport not in ELECTRON_TRANSPORT_MODES:
        raise ValueError(
            f"electron_transport: {electron_transport!r} is not one of {', '.join(ELECTRON_TRANSPORT_MODES)}"
        )


def _checked_activity(activity, shape: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    tensor = activity if isinstance(activity, torch.Tensor) else torch.as_tensor(np.asarray(activity))
    tensor = tensor.to(device=device, dtype=torch.float64)
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"activity: shape {tuple(tensor.shape)} differs from the medium's {tuple(shape)}")
    check_finite_nonnegative(tensor, "activity")
    return tensor


def _photon_batches(
    decays_per_voxel: torch.Tensor,
    medium: Medium,
    lines: PhotonLines,
    per_batch: int,
    batches: int,
    seed: int,
    cutoff_MeV: float,
    progress: ProgressCallback,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Run the photon batches: (mean MeV per history per voxel, variance of that mean, per-history summary)."""
    device = decays_per_voxel.device
    generator = torch.Generator(device=device).manual_seed(int(seed))
    cross_sections = PhotonCrossSections(medium.materials, cutoff_MeV, float(lines.energies_MeV.max()), device)
    sum_1 = torch.zeros(decays_per_voxel.numel(), dtype=torch.float64, device=device)
    sum_2 = torch.zeros_like(sum_1)
    emitted = escaped = 0.0
    for batch in range(batches):
        position = sample_decay_positions(decays_per_voxel, medium.spacing_mm, per_batch, generator)
        energy = lines.sample(per_batch, generator, device)
        emitted += float(energy.double().sum())
        tally = transport_photons(
            medium,
            position,
            isotropic_directions(per_batch, generator, device),
            energy,
            generator,
            cutoff_MeV=cutoff_MeV,
            cross_sections=cross_sections,
        )
        escaped += tally.escaped_MeV + tally.surrounding_MeV
        per_history = tally.deposited_MeV / per_batch
        sum_1 += per_history
        sum_2 += per_history * per_history
        progress((batch + 1) / batches, f"Monte Carlo batch {batch + 1}/{batches}")
    mean = sum_1 / batches
    variance = (sum_2 / batches - mean * mean) / (batches - 1)
    histories = per_batch * batches
    summary = {"emitted": emitted / histories, "escaped": escaped / histories}
    return mean.reshape(medium.shape), variance.reshape(medium.shape), summary


def _electron_energy(released_MeV_per_s: torch.Tensor, medium: Medium, nuclide: str, mode: str) -> torch.Tensor:
    """Where the energy released as electrons (MeV/s per voxel, shape (z, y, x)) is deposited (MeV/s per voxel)."""
    if mode == "local":
        return released_MeV_per_s
    radial = beta_point_kernel(nuclide)
    deposited = torch.zeros_like(released_MeV_per_s)
    for index, name in enumerate(medium.materials):
        source = torch.where(medium.material_index == index, released_MeV_per_s, torch.zeros_like(released_MeV_per_s))
        total = float(source.sum())
        if total <= 0:
            continue
        density = float((source * medium.density_g_per_cm3).sum()) / total
        if name == "air" or density <= 0:
            deposited += source
            continue
        fractions = beta_voxel_fractions(radial, medium.spacing_mm, density)
        kernel = torch.as_tensor(fractions, dtype=torch.float32, device=source.device)
        deposited += torch.clamp(fft_convolve(source.float(), kernel), min=0.0).double()
    return deposited
