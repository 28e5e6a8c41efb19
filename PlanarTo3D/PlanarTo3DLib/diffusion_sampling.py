"""3D activity from measured anterior/posterior counts with the slice diffusion prior, sampled consistently with the
counts as in DDS (Chung et al., "Decomposed Diffusion Sampler"), and its uncertainty from several samples.

One sample: DDIM (MONAI's scheduler, ``steps`` steps, ``eta`` the DDIM noise) over the stacked axial slices of the
volume, all slices denoised as one batch at each step. At each step the denoised estimate x0 of the whole volume
is made consistent with the counts and non-negative (:class:`PlanarTo3DLib.consistency.PlanarConsistency`: a few CG
steps of Poisson-weighted least squares, ADMM total variation along z and non-negativity, stopped at the counts'
noise level) and the step is re-noised from it: ``x_prev += sqrt(alpha_prev) (x0_consistent - x0)``. The result
is the last step's consistent x0; no extra step forces exact agreement with the noisy counts. It is scaled so that
its projection has the measured total counts (:func:`PlanarTo3DLib.reconstruct.scaled_to_counts`).

Start. By default DDIM starts from pure noise at the top of the schedule (as DDS and DiffusionMBIR). With
``start_step`` T it starts instead from the patient's pre-therapy PET noised to timestep T (as SDEdit) and runs only
the DDIM steps at or below T: the prior and the counts then correct a patient-shaped first guess instead of
inventing the anatomy. On 3 held-out virtual patients (``evaluate-planar --patients 3``, the shipped CT- and
PET-conditioned prior, patient-specific, 2 samples) the start from the PET at T = 300 gave MAE 0.130, SSIM 0.988
and a mean organ activity error of 12.3 %, against 0.169, 0.982 and 12.5 % from pure noise, in a quarter of the
sampling time; its samples spread less, since they share the PET's anatomy.

K samples (seeds ``seed``, ``seed + 1``, ...) give the mean activity, the per-voxel standard deviation and each
organ's activity with its spread. Arrays are (z, y, x) in Bq/mL; planar counts (2, z, x).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.progress import ProgressCallback, no_progress

from .consistency import ConsistencySettings, PlanarConsistency
from .data import DEFAULT_CAMERA, GRID_SPACING_MM, MU_SCALE, PlanarCamera, activity_share, projector
from .diffusion import TRAIN_TIMESTEPS, SlicePrior, from_diffusion, sampling_scheduler, to_diffusion
from .reconstruct import scaled_to_counts


@dataclass(frozen=True)
class SamplingSettings:
    """DDIM steps over the whole schedule, DDIM ``eta`` (0: deterministic given the start noise), samples K, the
    first sample's seed, the planar consistency (``None``: the prior alone, for comparison) and the start
    (``start_step`` None: pure noise; T: the pre-therapy PET noised to training timestep T, see the module
    docstring)."""

    steps: int = 50
    eta: float = 0.0
    samples: int = 4
    seed: int = 0
    consistency: ConsistencySettings | None = field(default_factory=ConsistencySettings)
    start_step: int | None = None

    def __post_init__(self) -> None:
        if self.samples < 1 or self.steps < 1 or self.eta < 0:
            raise ValueError(f"sampling: samples and steps must be >= 1 and eta >= 0, got {self}")
        if self.start_step is not None and not 0 < self.start_step < TRAIN_TIMESTEPS:
            raise ValueError(f"sampling: start_step must be a timestep in 1..{TRAIN_TIMESTEPS - 1}, got "
                             f"{self.start_step}")  # fmt: skip

    def record(self) -> dict[str, Any]:
        """For provenance and cards."""
        consistency = None if self.consistency is None else vars(self.consistency)
        start = "pure noise" if self.start_step is None else f"pre-therapy PET noised to timestep {self.start_step}"
        return {"sampler": "DDIM with planar consistency on the denoised estimate (DDS)", "steps": self.steps,
                "eta": self.eta, "samples": self.samples, "seeds": [self.seed + k for k in range(self.samples)],
                "planar_consistency_step": consistency, "start": start}  # fmt: skip


DEFAULT_SAMPLING = SamplingSettings()


@dataclass
class DiffusionSamples:
    """K samples (K, z, y, x) in Bq/mL, their mean and per-voxel standard deviation (z, y, x)."""

    samples: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return self.samples.mean(axis=0).astype(np.float32)

    @property
    def std(self) -> np.ndarray:
        """Per-voxel standard deviation over the samples (Bq/mL; ddof 1, zero for one sample)."""
        if len(self.samples) < 2:
            return np.zeros(self.samples.shape[1:], np.float32)
        return self.samples.std(axis=0, ddof=1).astype(np.float32)


def previous_alpha(scheduler, timestep: int) -> float:
    """The cumulative alpha of the DDIM step after ``timestep`` (as the scheduler's ``step`` takes it)."""
    previous = timestep - scheduler.num_train_timesteps // scheduler.num_inference_steps
    return float(scheduler.alphas_cumprod[previous] if previous >= 0 else scheduler.final_alpha_cumprod)


def starting_point(
    scheduler, noise: torch.Tensor, start: torch.Tensor | None, start_step: int | None
) -> tuple[torch.Tensor, list[int]]:
    """DDIM's first sample and the timesteps to run: ``noise`` and all of them when ``start_step`` is None;
    otherwise ``start`` (diffusion values, the shape of ``noise``) noised to the first DDIM timestep at or below
    ``start_step``, and the timesteps from there."""
    timesteps = scheduler.timesteps.tolist()
    if start_step is None:
        return noise, timesteps
    timesteps = [t for t in timesteps if t <= start_step]
    alpha = float(scheduler.alphas_cumprod[timesteps[0]])
    return alpha**0.5 * start + (1.0 - alpha) ** 0.5 * noise, timesteps


def dds_step(
    prior: SlicePrior,
    scheduler,
    sample: torch.Tensor,
    timestep: int,
    condition: torch.Tensor | None,
    consistency: PlanarConsistency | None,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step of all slices ``sample`` (z, 1, y, x; diffusion values) at ``timestep``; with
    ``consistency``, the denoised estimate is made consistent with the planar counts and the next sample moved
    with it (DDS). Returns (next sample, denoised estimate)."""
    with torch.no_grad():
        noise = prior(sample, torch.full((len(sample),), timestep, device=sample.device), condition)
    sample, estimate = scheduler.step(noise, timestep, sample, eta=eta, generator=generator)
    if consistency is not None:
        consistent = to_diffusion(consistency(from_diffusion(estimate[:, 0])).to(sample.device))[:, None]
        sample = sample + previous_alpha(scheduler, timestep) ** 0.5 * (consistent - estimate)
        estimate = consistent
    return sample, estimate


def sample_share(
    prior: SlicePrior,
    measured: np.ndarray,
    mu: np.ndarray,
    *,
    camera: PlanarCamera = DEFAULT_CAMERA,
    spacing_mm: float = GRID_SPACING_MM,
    settings: SamplingSettings = DEFAULT_SAMPLING,
    seed: int = 0,
    pet: np.ndarray | None = None,
    body: np.ndarray | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """One sample's activity distribution (network units, (z, y, x), not clamped) for counts ``measured`` (2, z, x)
    and attenuation ``mu`` (1/cm, (z, y, x)); ``pet`` (any unit, (z, y, x)) for a prior conditioned on it and for a
    start from the PET (``settings.start_step``); ``body`` (boolean (z, y, x), e.g.
    :func:`DosimetryCore.physics.ct.body_mask` of the CT): no activity outside it (the support of the consistency
    step, and of the returned sample)."""
    report = progress or no_progress
    if measured.shape != (2, mu.shape[0], mu.shape[2]):
        raise ValueError(f"measured: expected planar images (2, z, x) = (2, {mu.shape[0]}, {mu.shape[2]}), "
                         f"got {measured.shape}")  # fmt: skip
    torch_device = resolve_device(device)
    prior = prior.to(torch_device).eval()
    consistency = None
    if settings.consistency is not None:
        consistency = PlanarConsistency(projector(mu, camera, spacing_mm), measured, settings.consistency, body)
    scheduler = sampling_scheduler(settings.steps)
    generator = torch.Generator(device=torch_device).manual_seed(int(seed))
    z, y, x = mu.shape
    mu_slices = torch.from_numpy(np.asarray(mu, np.float32) * np.float32(MU_SCALE))[:, None].to(torch_device)
    pet_slices = None if pet is None else to_diffusion(torch.from_numpy(activity_share(pet)))[:, None].to(torch_device)
    condition = prior.condition(mu_slices, pet_slices)
    sample = torch.randn((z, 1, y, x), generator=generator, device=torch_device)
    if settings.start_step is not None and pet_slices is None:
        raise ValueError("pet: a start from the pre-therapy PET (start_step) needs the PET")
    sample, timesteps = starting_point(scheduler, sample, pet_slices, settings.start_step)
    estimate = sample
    for index, timestep in enumerate(timesteps):
        sample, estimate = dds_step(prior, scheduler, sample, timestep, condition, consistency, settings.eta, generator)
        report((index + 1) / len(timesteps), f"DDIM step {index + 1}/{len(timesteps)}")
    share = from_diffusion(estimate[:, 0]).cpu().numpy().astype(np.float32)
    return share if body is None else np.where(body, share, np.float32(0.0))


def sample_activity(
    prior: SlicePrior,
    measured: np.ndarray,
    mu: np.ndarray,
    *,
    camera: PlanarCamera = DEFAULT_CAMERA,
    spacing_mm: float = GRID_SPACING_MM,
    settings: SamplingSettings = DEFAULT_SAMPLING,
    pet: np.ndarray | None = None,
    body: np.ndarray | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> DiffusionSamples:
    """``settings.samples`` samples of the activity (Bq/mL), each non-negative with its projection's total equal
    to the measured total counts; ``pet`` for a prior conditioned on it; ``body``: no activity outside it (see
    :func:`sample_share`)."""
    report = progress or no_progress
    measured = np.asarray(measured, np.float32)
    if not np.all(np.isfinite(measured)) or measured.min() < 0 or not measured.sum() > 0:
        raise ValueError("measured: planar counts must be finite, >= 0 and hold some counts")
    samples = []
    for k in range(settings.samples):

        def part(fraction: float, message: str, k: int = k) -> None:
            report((k + fraction) / settings.samples, f"sample {k + 1}/{settings.samples}: {message}")

        share = sample_share(prior, measured, mu, camera=camera, spacing_mm=spacing_mm, settings=settings,
                             seed=settings.seed + k, pet=pet, body=body, device=device, progress=part)  # fmt: skip
        samples.append(scaled_to_counts(np.clip(share, 0.0, None), mu, measured, camera, spacing_mm))
    return DiffusionSamples(np.stack(samples))


def organ_spread(
    samples: DiffusionSamples, labels: np.ndarray, names: dict[int, str], spacing_mm: float = GRID_SPACING_MM
) -> dict[str, dict[str, float]]:
    """Each organ's activity (MBq) over the samples: ``{organ: {"activity_MBq": mean, "activity_sd_MBq": sd}}``
    (sd with ddof 1; zero for one sample)."""
    voxel_ml = spacing_mm**3 / 1000.0
    flat = samples.samples.reshape(len(samples.samples), -1)
    spread = {}
    for label, name in names.items():
        per_sample = flat[:, labels.reshape(-1) == label].sum(axis=1) * voxel_ml * 1e-6
        sd = float(per_sample.std(ddof=1)) if len(per_sample) > 1 else 0.0
        spread[name] = {"activity_MBq": float(per_sample.mean()), "activity_sd_MBq": sd}
    return spread
