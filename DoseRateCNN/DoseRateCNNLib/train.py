"""Training the residual dose-rate network on a ``simulate-dose`` dataset with the shared training loop.

Li et al. trained with Adam, ReduceLROnPlateau and a 0.7 body / 0.3 outside mean squared error on whole
512 x 512 slices at 0.98 mm. Here (stated in the model card):

- the grid is the dataset's dose grid (4.8 mm by default): a 512 x 512 slice costs about 2 s per forward pass
  on 2 CPU cores, far from a trainable budget, while a 4.8 mm slice (about 80 x 112 padded) trains at several
  slices per second;
- each epoch draws ``slices_per_volume`` random slices of every (case, count level) and a random in-plane crop
  (``crop``), instead of every whole slice, so an epoch fits in minutes and validation runs often;
- the U-Net's last convolution starts at zero, so training starts from output = VDK (the baseline) and every
  step has to improve on it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from DosimetryCore.core.progress import ProgressCallback
from DosimetryCore.learning import models
from DosimetryCore.learning.curves import plot_loss_curve
from DosimetryCore.learning.distributed import is_main_process
from DosimetryCore.learning.runtime import hardware_description, software_versions
from DosimetryCore.learning.training import (
    TrainingResult,
    parallel_training,
    result_record,
    seed_everything,
    train,
)

from .dataset import manifest_sha256
from .training_data import (
    ACTIVITY_SCALE,
    BODY_WEIGHT,
    DOSE_RATE_SCALE,
    MEAN_WEIGHT,
    DoseSliceDataset,
    PackedDoseNet,
    body_weighted_mse,
    region_mean_weighted_mse,
    region_weighted_mse,
)

SUMMARY_FILE = "training_summary.json"
LOSS_CURVE_FILE = "loss_curve.png"
DEFAULTS = {
    "epochs": 30,
    "batch_size": 8,
    "lr": 1e-3,
    "seed": 0,
    "crop": 64,
    "slices_per_volume": 16,
    "val_slice_step": 8,
    "patience": 8,
    "loss": "body",
}
"""Defaults of :func:`train_dose_cnn` (and of ``deepdosimetry train dose-cnn``)."""

LOSSES = {
    "body": (
        body_weighted_mse,
        f"{BODY_WEIGHT:g} x MSE inside the body + {1 - BODY_WEIGHT:g} x MSE outside (network units), as Li et al.",
    ),
    "region": (
        region_weighted_mse,
        f"{BODY_WEIGHT:g} x mean over the body of (w x squared error) + {1 - BODY_WEIGHT:g} x MSE outside (network "
        "units); w = 1 / (voxels x VDK's mean squared error) of the voxel's region (each organ, each lesion; at "
        "least 8 voxels, VDK's error at least 5 % of the region's mean), scaled to a mean of 1 over the body: every "
        "region counts as (error / VDK's error)^2, whatever its size and dose rate (DoseRateCNNLib/region_weights.py)",
    ),
    "region+mean": (
        region_mean_weighted_mse,
        f"the region loss plus {MEAN_WEIGHT:g} x the same weights on each region's mean error in each slice crop "
        "(w_R x voxels x mean error^2, over the body voxels), so that organ and lesion means are not left short "
        "by partial volume (DoseRateCNNLib/training_data.py: region_mean_weighted_mse)",
    ),
}
"""Training losses by name: (function, description for the summary and the card)."""

NORMALISATION = (
    f"activity input = SPECT (Bq/mL) / its total activity (MBq) x {ACTIVITY_SCALE:g}; density input in g/cm3; "
    f"VDK input and output = dose rate (Gy/h) / the SPECT's total activity (MBq) x {DOSE_RATE_SCALE:g} "
    "(independent of the count level and the administered activity, as DblurDoseNet)"
)


@dataclass
class DoseTrainingRun:
    """A finished :func:`train_dose_cnn`: the model (best epoch's weights), the loop's result, the summary."""

    model: PackedDoseNet
    result: TrainingResult
    summary: dict[str, Any]
    summary_path: Path
    loss_curve: Path


def new_model(seed: int) -> PackedDoseNet:
    """The untrained network seeded with ``seed``, its U-Net's last convolution zero (output = VDK)."""
    seed_everything(seed)
    model = PackedDoseNet()
    final = model.net.unet.final_conv
    final.weight.data.zero_()
    final.bias.data.zero_()
    return model


def train_dose_cnn(
    data: str | os.PathLike,
    checkpoint_dir: str | os.PathLike,
    *,
    epochs: int = DEFAULTS["epochs"],
    batch_size: int = DEFAULTS["batch_size"],
    lr: float = DEFAULTS["lr"],
    seed: int = DEFAULTS["seed"],
    crop: int | None = DEFAULTS["crop"],
    slices_per_volume: int = DEFAULTS["slices_per_volume"],
    val_slice_step: int = DEFAULTS["val_slice_step"],
    patience: int | None = DEFAULTS["patience"],
    loss: str = DEFAULTS["loss"],
    max_cases: int | None = None,
    init_model: str | None = None,
    models_dir: str | os.PathLike | None = None,
    device: str | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    command: str = "",
) -> DoseTrainingRun:
    """Train :class:`PackedDoseNet` on the train split of ``data``, validating on its val split.

    Args:
        data: a ``simulate-dose`` dataset folder with train and val cases.
        checkpoint_dir: checkpoints, ``training_summary.json`` and ``loss_curve.png``.
        epochs, batch_size, lr, seed, patience: as :func:`DosimetryCore.learning.training.train` (Adam,
            ReduceLROnPlateau).
        crop: in-plane random crop (multiple of 16; None: whole slices).
        slices_per_volume: random slices per (case, count level) per epoch.
        val_slice_step: validation on every ``val_slice_step``-th whole slice of each val volume.
        loss: a name of :data:`LOSSES`: ``"body"`` (Li et al.'s), ``"region"`` (each organ's and lesion's squared
            error relative to VDK's there, so that every region counts alike) or ``"region+mean"`` (``"region"``
            plus a term on each region's mean error).
        max_cases: use only the first cases of each split.
        init_model: start from this installed model's weights (in ``models_dir``, default the resources' Models)
            instead of VDK (:func:`DosimetryCore.learning.models.initialise_from`); the card records how it was
            trained.

    Under ``torchrun --nproc_per_node=K`` the same call trains on K processes (``batch_size`` is the global
    batch); rank 0 alone writes the summary and the loss curve.
        command: the command line to record.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown {loss!r}; choose one of {', '.join(LOSSES)}")
    loss_function, loss_description = LOSSES[loss]
    targets = {"region_weights": loss != "body", "region_index": loss == "region+mean"}
    train_set = DoseSliceDataset(
        data, "train", random_slices=slices_per_volume, crop=crop, flips=True, max_cases=max_cases, **targets
    )
    val_set = DoseSliceDataset(data, "val", slice_step=val_slice_step, max_cases=max_cases, **targets)
    model = new_model(seed)
    initialised_from = None
    if init_model is not None:
        initialised_from = models.initialise_from(model, init_model, PackedDoseNet.from_config, models_dir)
    checkpoint_dir = Path(checkpoint_dir)
    settings = {"lr": lr, "lr_schedule": "plateau", "batch_size": batch_size, "epochs": epochs, "seed": seed}
    started = time.perf_counter()
    result = train(
        model,
        train_set,
        val_set,
        loss_function,
        checkpoint_dir=checkpoint_dir,
        device=device,
        resume=resume,
        early_stop_patience=patience,
        model_config=model.config,
        progress=progress,
        **settings,
    )
    run_time = time.perf_counter() - started
    curve, summary_path = checkpoint_dir / LOSS_CURVE_FILE, checkpoint_dir / SUMMARY_FILE
    manifest = train_set.manifest
    summary = {
        "method": "DoseRateCNN (Li, Fessler, Mikell, Wilderman, Dewaraja, Med Phys 2022)",
        "model": {
            "config": model.config,
            "parameters": sum(p.numel() for p in model.parameters()),
            "normalisation": NORMALISATION,
            "output": "U-Net correction + VDK dose rate, clamped at zero and zero outside the body at inference",
        },
        "data": {
            "folder": str(Path(data).resolve()),
            "manifest_sha256": manifest_sha256(data),
            "dataset_seed": manifest["dataset_seed"],
            "settings": manifest["settings"],
            "train_cases": [case["id"] for case in train_set.cases],
            "val_cases": [case["id"] for case in val_set.cases],
            "count_levels": manifest["settings"]["count_levels"],
        },
        "training": {
            "loss": loss_description,
            "optimiser": "Adam, ReduceLROnPlateau (factor 0.5, patience 5)",
            "augmentation": "random mirroring left-right, front-back and head-foot",
            "samples_per_epoch": len(train_set),
            "crop": crop,
            "slices_per_volume": slices_per_volume,
            "val_slices": len(val_set),
            "initial_output": "VDK (U-Net last convolution initialised to zero)"
            if init_model is None
            else f"the weights of model {init_model}",
            **settings,
            "early_stop_patience": patience,
        },
        "result": result_record(result, run_time),
        "hardware": hardware_description(device, result.world_size),
        "versions": software_versions(),
        "command": command,
        "checkpoints": {"best": str(result.best_checkpoint), "latest": str(result.latest_checkpoint)},
        "loss_curve": str(curve),
        "initialised_from": initialised_from,
    }
    if is_main_process():  # under torchrun, rank 0 writes the outputs
        plot_loss_curve(result.history, curve)
        summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return DoseTrainingRun(model.cpu().eval(), result, summary, summary_path, curve)


def departures_from_the_paper(summary: dict[str, Any]) -> list[str]:
    """How a training run differs from Li et al.'s, in words, for the model card."""
    settings = summary["data"]["settings"]
    training = summary["training"]
    n_cases = len(summary["data"]["train_cases"]) + len(summary["data"]["val_cases"])
    return [
        f"grid: {settings['dose_spacing_mm']:g} mm isotropic (the dose grid of the training data), not the CT grid of "
        "0.98 x 0.98 x 3 mm: one forward pass of a 512 x 512 slice takes about 2.2 s on 2 CPU cores "
        "(benchmarks/dose_cnn_inference.py), so training there would take days on this hardware; a SPECT "
        f"reconstructed at 4.8 mm holds no detail finer than the {settings['dose_spacing_mm']:g} mm grid",
        "front end: every depth operation 'valid' and of stride 1 (same 11-slice receptive field) so that a whole "
        "volume is predicted in one pass, exactly as pack by pack",
        f"each epoch: {training['slices_per_volume']} random slices per (case, count level), random in-plane crops "
        f"of {training['crop']} voxels, random mirroring; initial output: {training['initial_output']}",
        f"data: {n_cases} virtual patients of this project's analytic torso (not XCAT), Monte Carlo labels of this "
        "project's engine (photon transport, electrons by the point kernel), SPECT simulated without scatter",
        "float32 training: bf16 autocast was 7-25 % faster per step in a measurement shared with other jobs, and "
        "was not adopted without an accuracy comparison",
        *([] if training["loss"] == LOSSES["body"][1] else [f"loss: {training['loss']}"]),
    ]


def card_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """Model-card fields from a training summary (held-out metrics come from ``evaluate-dose --update-card``)."""
    data = summary["data"]
    return {
        "architecture": summary["model"]["config"],
        "method": summary["method"],
        "normalisation": summary["model"]["normalisation"],
        "grid": f"dose grid of the training data: {data['settings']['dose_spacing_mm']:g} mm isotropic; inputs on "
        "other grids are resampled onto it and the dose rate back",
        "training_data": {
            "manifest_sha256": data["manifest_sha256"],
            "dataset_seed": data["dataset_seed"],
            "settings": data["settings"],
            "n_train": len(data["train_cases"]),
            "n_val": len(data["val_cases"]),
        },
        "training_domain": {
            "dose_spacing_mm": data["settings"]["dose_spacing_mm"],
            "count_levels": data["count_levels"],
        },
        "training_command": summary["command"],
        "training": summary["training"],
        "departures_from_the_paper": departures_from_the_paper(summary),
        "hardware": summary["hardware"],
        "wall_time_s": summary["result"]["wall_time_s"],
        "epochs": summary["result"]["epochs_run"],
        "initialised_from": summary.get("initialised_from"),
        "total_epochs": models.total_training(summary)[0],
        "total_wall_time_s": models.total_training(summary)[1],
        "best_epoch": summary["result"]["best_epoch"],
        "loss_history": [
            {key: entry[key] for key in ("epoch", "train_loss", "val_loss", "lr")}
            for entry in summary["result"]["history"]
        ],
        "versions": summary["versions"],
        "parallel_training": parallel_training(summary["result"]),
        "metrics": {},
        "baselines": {},
    }
