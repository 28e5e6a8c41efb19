"""Where PlanarTo3D's diffusion path loses the organs: the prior's sampler and the DDS consistency loop, apart.

Usage: ``python benchmarks/planar_diffusion_diagnosis.py [--prior planar3d-diffusion] [--models-dir DIR]
[--patient 0] [--steps 50]``

On one held-out virtual patient (:func:`PlanarTo3DLib.evaluation.held_out_seeds`, with its pre-therapy PET and
noisy planar images as ``evaluate-planar`` makes them) it prints one table row per experiment: the correlation of
the sampled activity share with the truth's, the mean absolute organ activity error, MAE and SSIM (as
``evaluate-planar``):

- the prior alone, and DDS (the prior with the planar consistency at every step), from pure noise (what
  ``planar-to-3d --method diffusion`` does);
- the prior alone, DDIM from the truth noised to t = 300 and t = 700 (can it denoise what it is given?);
- from the PET noised to t = 300: the prior alone, and with the planar consistency at every step (DDS);
- the consistency step once, applied to the truth and to the PET (does it move a good estimate away?);
- conjugate view (organ activities only), the reference the organ errors must beat.

A PET-conditioned prior gets the PET slices; an unconditioned one ignores them. Every result is set to zero outside
the body (:func:`DosimetryCore.physics.ct.body_mask`), as the sampler's consistency step does.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from DosimetryCore.learning import models
from DosimetryCore.physics.ct import body_mask
from PlanarTo3DLib import data
from PlanarTo3DLib.consistency import ConsistencySettings, PlanarConsistency
from PlanarTo3DLib.diffusion import SlicePrior, from_diffusion, sampling_scheduler, to_diffusion
from PlanarTo3DLib.diffusion_sampling import dds_step, starting_point
from PlanarTo3DLib.evaluation import (
    conjugate_view_errors,
    held_out_case,
    held_out_seeds,
    image_row,
    organ_activities_MBq,
    organ_errors,
    organ_labelmap,
)
from PlanarTo3DLib.reconstruct import scaled_to_counts


def run_ddim(prior, start, first_step, condition, consistency, steps, seed=0):
    """DDIM from ``start`` (diffusion values, (z, 1, y, x)) noised to ``first_step`` (None: pure noise), with the
    planar consistency on each denoised estimate when ``consistency`` is given; returns the last estimate."""
    scheduler = sampling_scheduler(steps)
    noise = torch.randn(start.shape, generator=torch.Generator().manual_seed(seed))
    sample, timesteps = starting_point(scheduler, noise, start, first_step)
    estimate = sample
    for timestep in timesteps:
        sample, estimate = dds_step(prior, scheduler, sample, timestep, condition, consistency)
    return from_diffusion(estimate[:, 0]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prior", default="planar3d-diffusion", help="installed slice prior")
    parser.add_argument("--models-dir", help="models folder (default: the resources' Models)")
    parser.add_argument("--patient", type=int, default=0, help="index of the held-out patient")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps over the whole schedule")
    arguments = parser.parse_args()
    prior, _ = models.load_model(arguments.prior, SlicePrior.from_config, "cpu", arguments.models_dir)
    prior.eval()
    seed = held_out_seeds(arguments.patient + 1)[arguments.patient]
    patient = held_out_case(seed)
    truth, labels, mu, pet, measured = (patient[key] for key in ("activity", "labels", "mu", "pet", "measured"))
    organs, names = organ_labelmap(labels)
    true_MBq = organ_activities_MBq(truth, organs, names)
    body = patient["hu"] > -500
    truth_share, pet_share = data.activity_share(truth), data.activity_share(pet)
    truth_values = to_diffusion(torch.from_numpy(truth_share))[:, None]
    pet_values = to_diffusion(torch.from_numpy(pet_share))[:, None]
    mu_slices = torch.from_numpy(mu * np.float32(data.MU_SCALE))[:, None]
    condition = prior.condition(mu_slices, pet_values if prior.pet_conditioning else None)
    support = body_mask(patient["hu"])
    consistency = PlanarConsistency(data.projector(mu), measured, ConsistencySettings(), support)
    steps = arguments.steps
    experiments = {
        "prior, from pure noise": lambda: run_ddim(prior, truth_values, None, condition, None, steps),
        "DDS, from pure noise": lambda: run_ddim(prior, truth_values, None, condition, consistency, steps),
        "prior, from truth at t=300": lambda: run_ddim(prior, truth_values, 300, condition, None, steps),
        "prior, from truth at t=700": lambda: run_ddim(prior, truth_values, 700, condition, None, steps),
        "prior, from PET at t=300": lambda: run_ddim(prior, pet_values, 300, condition, None, steps),
        "DDS, from PET at t=300": lambda: run_ddim(prior, pet_values, 300, condition, consistency, steps),
        "consistency once on the truth": lambda: consistency(torch.from_numpy(truth_share)).numpy(),
        "consistency once on the PET": lambda: consistency(torch.from_numpy(pet_share)).numpy(),
        "the PET itself": lambda: pet_share,
    }
    names_in = ", ".join(names.values())
    print(f"prior {arguments.prior} (PET-conditioned: {prior.pet_conditioning}), held-out patient {seed}")
    print(f"{'experiment':34s} {'corr':>6s} {'organ err %':>11s} {'MAE':>6s} {'SSIM':>6s}  organ errors % ({names_in})")
    for name, experiment in experiments.items():
        share = np.where(support, np.clip(experiment(), 0.0, None), 0.0)
        activity = scaled_to_counts(share, mu, measured)
        correlation = float(np.corrcoef(share.ravel(), truth_share.ravel())[0, 1])
        errors = organ_errors(organ_activities_MBq(activity, organs, names), true_MBq)
        row = image_row(activity, truth, body)
        print(
            f"{name:34s} {correlation:6.3f} {errors['organ_abs_error_%']:11.1f} {row['mae_norm']:6.3f} "
            f"{row['ssim']:6.3f}  {_each(errors, names)}"
        )
    errors = conjugate_view_errors(measured, mu, organs, names, true_MBq)
    print(
        f"{'conjugate view':34s} {'-':>6s} {errors['organ_abs_error_%']:11.1f} {'-':>6s} {'-':>6s}  "
        f"{_each(errors, names)}"
    )


def _each(errors: dict[str, float], names: dict[int, str]) -> str:
    """Each organ's signed error (%), in the order of ``names``."""
    return " ".join(f"{errors[f'organ_error_{name}_%']:+.0f}" for name in names.values())


if __name__ == "__main__":
    main()
