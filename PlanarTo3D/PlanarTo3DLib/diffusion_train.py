"""Training the slice diffusion prior with the shared loop: the generic prior on axial slices of the synthetic
population (:func:`PlanarTo3DLib.datasets.population_samples`), and the patient-specific prior, the generic one
fine-tuned on slices of that patient's PET variations (:func:`PlanarTo3DLib.datasets.patient_samples`).

Loss: mean squared error of the predicted noise (DDPM's simple loss) at a uniformly drawn timestep
(:class:`PlanarTo3DLib.diffusion.NoisePrediction`). Adam; the generic run with ReduceLROnPlateau, the fine-tuning
with a constant, lower rate. An epoch is one pass over the slices.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.learning.runtime import hardware_description, software_versions
from DosimetryCore.learning.training import result_record, seed_everything, train

from .data import ACTIVITY_SCALE, DEFAULT_CAMERA, GRID_SHAPE_ZYX, GRID_SPACING_MM, MU_SCALE, PlanarCamera
from .datasets import population_samples
from .diffusion import DEFAULT_CHANNELS, SHARE_KNEE, SHARE_MAX, NoisePrediction, SlicePrior, noise_loss, to_diffusion
from .train import patient_sets, training_card_fields, write_training_outputs

SUMMARY_FILE = "training_summary.json"
GENERIC_DEFAULTS = {"patients": 12, "variations": 3, "val_patients": 2, "epochs": 8, "batch_size": 16, "lr": 1e-3}
FINE_TUNE_DEFAULTS = {"variations": 100, "epochs": 4, "batch_size": 16, "lr": 2e-4, "val_share": 0.1}
NORMALISATION = (
    f"activity: concentration / its total x {ACTIVITY_SCALE:g} (network units), then 2 log(1 + share / "
    f"{SHARE_KNEE:g}) / log(1 + {SHARE_MAX:g} / {SHARE_KNEE:g}) - 1 into the diffusion model's values (no activity at "
    "-1, clipped at 1); attenuation channel "
    f"(when conditioned): mu (1/cm at 208 keV) x {MU_SCALE:g}; the sampled volume is scaled so that its projection "
    "has the measured total counts"
)


def slices_of(inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Axial training slices of volume samples (inputs (N, C, z, y, x) with the attenuation as channel 2 and the
    PET as channel 3 when C = 4, targets (N, 1, z, y, x) in network units): (N * z, 2 or 3, y, x) = (diffusion
    values, mu x MU_SCALE[, the PET in diffusion values]), and dummy targets (N * z,) for the shared loop (the
    noise is drawn inside the model)."""
    if inputs.ndim != 5 or targets.ndim != 5 or inputs.shape[2:] != targets.shape[2:]:
        raise ValueError(f"samples: expected (N, C, z, y, x) volumes, got {tuple(inputs.shape)} and "
                         f"{tuple(targets.shape)}")  # fmt: skip
    channels = [to_diffusion(targets[:, 0]), inputs[:, 2]]
    if inputs.shape[1] > 3:
        channels.append(to_diffusion(inputs[:, 3]))
    stacked = torch.stack(channels, dim=2)
    slices = stacked.reshape(-1, len(channels), *stacked.shape[-2:]).contiguous()
    return slices, torch.zeros(len(slices))


def new_prior(
    seed: int, channels=DEFAULT_CHANNELS, ct_conditioning: bool = False, pet_conditioning: bool = False
) -> SlicePrior:
    """The untrained prior seeded with ``seed``."""
    seed_everything(seed)
    return SlicePrior(channels, 1, ct_conditioning, pet_conditioning)


def _fit(prior: SlicePrior, train_set, val_set, out_dir: Path, device, resume: bool, progress, **settings):
    """The shared loop on the noise-prediction view of ``prior``; returns the loop's result (prior updated)."""
    return train(NoisePrediction(prior), train_set, val_set, noise_loss, checkpoint_dir=out_dir, device=device,
                 resume=resume, model_config=prior.config, progress=progress, **settings)  # fmt: skip


def train_generic_prior(
    out_dir: str | Path,
    *,
    patients: int = GENERIC_DEFAULTS["patients"],
    variations: int = GENERIC_DEFAULTS["variations"],
    val_patients: int = GENERIC_DEFAULTS["val_patients"],
    epochs: int = GENERIC_DEFAULTS["epochs"],
    batch_size: int = GENERIC_DEFAULTS["batch_size"],
    lr: float = GENERIC_DEFAULTS["lr"],
    seed: int = 0,
    channels=DEFAULT_CHANNELS,
    ct_conditioning: bool = False,
    pet_conditioning: bool = False,
    camera: PlanarCamera = DEFAULT_CAMERA,
    device: str | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    command: str = "",
) -> tuple[SlicePrior, dict[str, Any]]:
    """Train the generic prior on the axial slices of ``patients`` virtual patients (seed ``seed``) x (1 +
    ``variations``), validated on ``val_patients`` others (seed ``seed + 1``); checkpoints, loss curve and
    ``training_summary.json`` in ``out_dir``. Returns the prior (best epoch) and the summary. With
    ``pet_conditioning`` each virtual patient gets a pre-therapy PET unlike its truth (as the ResUNet's
    population), whose slices condition the prior."""
    report = progress or no_progress
    out_dir = Path(out_dir)
    started = time.perf_counter()
    train_x, train_y, train_seeds = population_samples(patients, variations, seed, camera,
                                                       sub_progress(report, 0.0, 0.08), pet_conditioning)  # fmt: skip
    val_x, val_y, val_seeds = population_samples(val_patients, 0, seed + 1, camera, sub_progress(report, 0.08, 0.1),
                                                 pet_conditioning)  # fmt: skip
    data_time = time.perf_counter() - started
    train_set, val_set = slices_of(train_x, train_y), slices_of(val_x, val_y)
    del train_x, val_x
    prior = new_prior(seed, channels, ct_conditioning, pet_conditioning)
    settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "lr_schedule": "plateau"}
    started = time.perf_counter()
    result = _fit(prior, train_set, val_set, out_dir, device, resume, sub_progress(report, 0.1, 1.0), **settings)
    summary = {
        "method": "PlanarTo3D diffusion slice prior, generic (DDS sampling with planar consistency)",
        "model": {"config": prior.config, "parameters": sum(p.numel() for p in prior.parameters()),
                  "normalisation": NORMALISATION},
        "grid": {"spacing_mm": GRID_SPACING_MM, "shape_zyx": list(GRID_SHAPE_ZYX)},
        "camera": asdict(camera),
        "data": {"population_seed": seed, "patients": patients, "variations_per_patient": variations,
                 "train_slices": len(train_set[0]), "val_patients": val_patients, "val_slices": len(val_set[0]),
                 "train_patient_seeds": train_seeds, "val_patient_seeds": val_seeds,
                 "simulation_wall_time_s": data_time},
        "training": {"loss": "MSE of the predicted noise, timestep uniform in [0, 1000) (DDPM, linear betas)",
                     "optimiser": "Adam, ReduceLROnPlateau (factor 0.5, patience 5)", **settings},
        "result": result_record(result, time.perf_counter() - started),
        "hardware": hardware_description(device, result.world_size),
        "versions": software_versions(),
        "command": command,
    }  # fmt: skip
    write_training_outputs(out_dir, result.history, summary)
    return prior.cpu().eval(), summary


def fine_tune_prior(
    generic: SlicePrior,
    pet: np.ndarray,
    hu: np.ndarray,
    labels: np.ndarray,
    total_counts: float,
    out_dir: str | Path,
    *,
    variations: int = FINE_TUNE_DEFAULTS["variations"],
    epochs: int = FINE_TUNE_DEFAULTS["epochs"],
    batch_size: int = FINE_TUNE_DEFAULTS["batch_size"],
    lr: float = FINE_TUNE_DEFAULTS["lr"],
    seed: int = 0,
    camera: PlanarCamera = DEFAULT_CAMERA,
    device: str | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[SlicePrior, dict[str, Any]]:
    """The patient-specific prior: ``generic`` fine-tuned on the axial slices of ``variations`` variations of the
    patient's PET within its CT (HU) and organ labels; a tenth of the variations validate. Checkpoints in
    ``out_dir`` (resumable). Returns the prior and a summary for its card."""
    report = progress or no_progress
    train_volumes, val_volumes = patient_sets(pet, hu, labels, total_counts, variations, seed, camera,
                                              sub_progress(report, 0.0, 0.15), generic.pet_conditioning)  # fmt: skip
    train_set, val_set = slices_of(*train_volumes), slices_of(*val_volumes)
    prior = copy.deepcopy(generic)
    settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "lr_schedule": "constant"}
    started = time.perf_counter()
    result = _fit(prior, train_set, val_set, Path(out_dir), device, resume, sub_progress(report, 0.15, 1.0),
                  **settings)  # fmt: skip
    summary = {
        "method": "PlanarTo3D diffusion slice prior, patient-specific (generic prior fine-tuned on the slices of "
                  "the patient's PET variations)",
        "variations": variations, "validation_variations": len(val_volumes[0]), "total_counts": total_counts,
        "training": {"loss": "MSE of the predicted noise", "optimiser": "Adam, constant rate", **settings},
        "result": result_record(result, time.perf_counter() - started),
    }  # fmt: skip
    return prior.cpu().eval(), summary


def card_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """Model-card fields of a generic prior from its training summary (held-out metrics: ``evaluate-planar``)."""
    return training_card_fields(summary) | {
        "parameters": summary["model"]["parameters"],
        "departures_from_the_paper": [
            f"grid {summary['grid']['spacing_mm']:g} mm, {summary['grid']['shape_zyx']} (z, y, x) and a small "
            f"DiffusionModelUNet ({summary['model']['config']['channels']} feature maps, "
            f"{summary['model']['parameters']} parameters) trained for minutes on a CPU: a small CPU model, not the "
            "paper's score model",
            "DDS sampling (50 DDIM steps, data consistency on the denoised estimate) instead of DiffusionMBIR's "
            "2000 predictor-corrector steps",
            "population: the project's analytic torso phantoms (177Lu-PSMA and -DOTATATE uptake); planar images "
            "without scatter",
            *(["conditioned on the attenuation (CT) slice (an input channel; the paper's stated next step)"]
              if summary["model"]["config"].get("ct_conditioning") else []),
            *(["conditioned on the pre-therapy PET slice (an input channel)"]
              if summary["model"]["config"].get("pet_conditioning") else []),
        ],
    }  # fmt: skip
