"""Training PlanarTo3D's ResUNet with the shared loop: the generic model on the synthetic population, and the
patient-specific model, the generic one fine-tuned on that patient's PET variations (Lopez-Montes et al.).

Loss: L1 between predicted and true activity distributions (network units, :mod:`PlanarTo3DLib.data`): the
paper reports MAE, and L1 keeps the few hot lesion voxels from dominating as squared errors would. Adam; the
generic run with ReduceLROnPlateau, the fine-tuning with a constant, lower rate.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.learning.curves import plot_loss_curve
from DosimetryCore.learning.distributed import is_main_process
from DosimetryCore.learning.runtime import hardware_description, software_versions
from DosimetryCore.learning.training import (
    parallel_training,
    result_record,
    seed_everything,
    train,
)

from .data import ACTIVITY_SCALE, DEFAULT_CAMERA, GRID_SHAPE_ZYX, GRID_SPACING_MM, MU_SCALE, PLANAR_SCALE, PlanarCamera
from .datasets import patient_samples, population_samples
from .network import DEFAULT_FEATURES, ResUNet3D

SUMMARY_FILE = "training_summary.json"
GENERIC_DEFAULTS = {"patients": 24, "variations": 3, "val_patients": 4, "epochs": 20, "batch_size": 2, "lr": 1e-3}
FINE_TUNE_DEFAULTS = {"variations": 100, "epochs": 4, "batch_size": 2, "lr": 2e-4, "val_share": 0.1}
NORMALISATION = (
    f"planar inputs: counts / (anterior + posterior total) x {PLANAR_SCALE:g}, spread along the antero-posterior "
    f"axis; attenuation: mu (1/cm at 208 keV) x {MU_SCALE:g}; activity: concentration / its total x "
    f"{ACTIVITY_SCALE:g}; output scaled so that its projection has the measured total counts"
)


def l1_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error in network units."""
    return nn.functional.l1_loss(prediction, target)


def new_model(seed: int, in_channels: int = 3, features=DEFAULT_FEATURES) -> ResUNet3D:
    """The untrained ResUNet seeded with ``seed``."""
    seed_everything(seed)
    return ResUNet3D(in_channels, features)


def train_generic(
    out_dir: str | Path,
    *,
    patients: int = GENERIC_DEFAULTS["patients"],
    variations: int = GENERIC_DEFAULTS["variations"],
    val_patients: int = GENERIC_DEFAULTS["val_patients"],
    epochs: int = GENERIC_DEFAULTS["epochs"],
    batch_size: int = GENERIC_DEFAULTS["batch_size"],
    lr: float = GENERIC_DEFAULTS["lr"],
    seed: int = 0,
    features=DEFAULT_FEATURES,
    pet_conditioning: bool = False,
    camera: PlanarCamera = DEFAULT_CAMERA,
    device: str | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    command: str = "",
) -> tuple[ResUNet3D, dict[str, Any]]:
    """Train the generic model on ``patients`` virtual patients (seed ``seed``) x (1 + ``variations``), validated
    on ``val_patients`` others (seed ``seed + 1``); checkpoints and ``training_summary.json`` in ``out_dir``.
    Returns the model (best epoch) and the summary. Under ``torchrun --nproc_per_node=K`` the same call trains on
    K processes (``batch_size`` is the global batch; every process simulates the same population); rank 0 alone
    writes. With ``pet_conditioning`` the pre-therapy PET is a fourth input channel (the paper's stated next
    step): each virtual patient's PET differs from its truth as the held-out patients' do."""
    report = progress or no_progress
    out_dir = Path(out_dir)
    started = time.perf_counter()
    train_x, train_y, train_seeds = population_samples(patients, variations, seed, camera,
                                                       sub_progress(report, 0.0, 0.08), pet_conditioning)  # fmt: skip
    val_x, val_y, val_seeds = population_samples(val_patients, 0, seed + 1, camera, sub_progress(report, 0.08, 0.1),
                                                 pet_conditioning)  # fmt: skip
    data_time = time.perf_counter() - started
    model = new_model(seed, 4 if pet_conditioning else 3, features)
    settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "lr_schedule": "plateau"}
    started = time.perf_counter()
    result = train(model, (train_x, train_y), (val_x, val_y), l1_loss, checkpoint_dir=out_dir, device=device,
                   resume=resume, model_config=model.config, progress=sub_progress(report, 0.1, 1.0),
                   **settings)  # fmt: skip
    summary = {
        "method": "PlanarTo3D ResUNet, generic (Lopez-Montes et al.)",
        "model": {"config": model.config, "parameters": sum(p.numel() for p in model.parameters()),
                  "normalisation": NORMALISATION},
        "grid": {"spacing_mm": GRID_SPACING_MM, "shape_zyx": list(GRID_SHAPE_ZYX)},
        "camera": asdict(camera),
        "data": {"population_seed": seed, "patients": patients, "variations_per_patient": variations,
                 "train_samples": len(train_x), "val_patients": val_patients, "train_patient_seeds": train_seeds,
                 "val_patient_seeds": val_seeds, "simulation_wall_time_s": data_time,
                 "pet_conditioning": pet_conditioning},
        "training": {"loss": "L1 on activity distributions (network units)",
                     "optimiser": "Adam, ReduceLROnPlateau (factor 0.5, patience 5)", **settings},
        "result": result_record(result, time.perf_counter() - started),
        "hardware": hardware_description(device, result.world_size),
        "versions": software_versions(),
        "command": command,
    }  # fmt: skip
    write_training_outputs(out_dir, result.history, summary)
    return model.cpu().eval(), summary


def write_training_outputs(out_dir: Path, history: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """The loss curve and the summary of a generic training run into ``out_dir`` (rank 0 alone under torchrun)."""
    if is_main_process():
        plot_loss_curve(history, out_dir / "loss_curve.png")
        (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def patient_sets(
    pet: np.ndarray, hu: np.ndarray, labels: np.ndarray, total_counts: float, variations: int, seed: int,
    camera: PlanarCamera, progress: ProgressCallback, pet_conditioning: bool = False,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """The patient's PET variations (:func:`PlanarTo3DLib.datasets.patient_samples`) as (inputs, targets) for
    training and, the first tenth of them, for validation."""
    inputs, targets = patient_samples(pet, hu, labels, variations, seed, total_counts, camera, progress,
                                      pet_conditioning)  # fmt: skip
    n_val = max(1, int(round(variations * FINE_TUNE_DEFAULTS["val_share"])))
    return (inputs[n_val:], targets[n_val:]), (inputs[:n_val], targets[:n_val])


def fine_tune(
    generic: ResUNet3D,
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
) -> tuple[ResUNet3D, dict[str, Any]]:
    """The patient-specific model: ``generic`` fine-tuned on ``variations`` variations of the patient's PET within
    its CT (HU) and organ labels, projected at the measured ``total_counts``; a tenth of them validate.
    Checkpoints in ``out_dir`` (resumable). Returns the model and a summary for its card."""
    report = progress or no_progress
    train_set, val_set = patient_sets(pet, hu, labels, total_counts, variations, seed, camera,
                                      sub_progress(report, 0.0, 0.15), generic.pet_conditioning)  # fmt: skip
    model = copy.deepcopy(generic)
    settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "lr_schedule": "constant"}
    started = time.perf_counter()
    result = train(model, train_set, val_set, l1_loss,
                   checkpoint_dir=out_dir, device=device, resume=resume, model_config=model.config,
                   progress=sub_progress(report, 0.15, 1.0), **settings)  # fmt: skip
    summary = {
        "method": "PlanarTo3D ResUNet, patient-specific (generic model fine-tuned on the patient's PET variations)",
        "variations": variations, "validation_variations": len(val_set[0]), "total_counts": total_counts,
        "training": {"loss": "L1", "optimiser": "Adam, constant rate", **settings},
        "result": result_record(result, time.perf_counter() - started),
    }  # fmt: skip
    return model.cpu().eval(), summary


def training_card_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """Model-card fields that every generic PlanarTo3D training summary gives (the ResUNet's and the diffusion
    prior's; held-out metrics come from ``evaluate-planar --update-card``)."""
    result = summary["result"]
    return {
        "architecture": summary["model"]["config"],
        "method": summary["method"],
        "normalisation": summary["model"]["normalisation"],
        "grid": summary["grid"],
        "camera": summary["camera"],
        "training_data": summary["data"],
        "training_command": summary["command"],
        "training": summary["training"],
        "hardware": summary["hardware"],
        "parallel_training": parallel_training(result),
        "wall_time_s": result["wall_time_s"],
        "epochs": result["epochs_run"],
        "best_epoch": result["best_epoch"],
        "loss_history": [
            {k: entry[k] for k in ("epoch", "train_loss", "val_loss", "lr")} for entry in result["history"]
        ],
        "versions": summary["versions"],
        "metrics": {},
        "baselines": {},
    }


def card_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """Model-card fields of a generic ResUNet from its training summary."""
    return training_card_fields(summary) | {
        "departures_from_the_paper": [
            f"grid {summary['grid']['spacing_mm']:g} mm, {summary['grid']['shape_zyx']} (z, y, x): the paper's "
            "128 x 128 x 175 voxels of 5.7 mm do not train on 2 CPU cores",
            "population: the project's analytic torso phantoms (177Lu-PSMA and -DOTATATE uptake), not 52 18F-PSMA "
            "patients; planar images without scatter",
            f"ResUNet of {summary['model']['config']['features']} feature maps (pytorch-3dunet's default is 64 to "
            "1024)",
            *(
                ["conditioned on the pre-therapy PET (a fourth input channel; the paper's stated next step)"]
                if summary["data"].get("pet_conditioning")
                else []
            ),
        ],
    }
