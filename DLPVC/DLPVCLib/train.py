"""``deepdosimetry train dlpvc``: train a DL-PVC network on a simulated dataset (seed 003).

Seed 003 (Leube et al., J Nucl Med 2024) trained U-Nets in PyTorch with the Adam optimiser on
full-field 128^3 SPECT/truth pairs, the input normalised by its maximum and the output scaled to
the input's total activity (R2U-Net came out best). Its main text names neither the loss function
nor the learning rate, batch size, number of epochs or the train/validation split (they are in its
supplement, which this project does not have), so these are this project's choices:

- loss: mean absolute error (L1) between the prediction and the truth, both divided by the
  truth's maximum (per sample, so every case weighs the same whatever its total activity and the
  loss is dimensionless). L1 is the loss of the fastMRI U-Net that seed 003's U-Net is based on,
  and it rewards voxels that are exactly right, which is what seed 003's VAA metric counts;
  ``--loss mse`` gives the squared error instead, and ``--loss l1+ssim`` adds
  :data:`SSIM_LOSS_WEIGHT` x (1 - SSIM), SSIM being seed 003's metric itself (3D Gaussian window,
  averaged over the true active region, data range the truth's maximum:
  :func:`DosimetryCore.learning.losses.masked_ssim`), which L1 alone does not reward for the structure of
  the image.
- normalisation layers: instance normalisation in R2U-Net (``--norm instance``), as in the
  fastMRI U-Net seed 003 builds on; Alom et al.'s batch normalisation (``--norm batch``) fails
  here: with 2 full-field volumes per batch its running statistics do not fit single cases, and
  on this project's 32^3 benchmark the trained network's loss in evaluation mode was 12 times
  its loss in training mode on the very training cases. MONAI's UNet and UNet++ already use
  instance normalisation; its attention U-Net has batch normalisation built in.
- Adam (seed 003) at lr 1e-3, batch size 2, up to 100 epochs with the learning rate halved after
  5 epochs without a lower validation loss (``plateau``); the model kept is the one of the lowest
  validation loss.
- augmentation: each training case is mirrored at random along z, y and x (``--no-flips`` turns
  it off; see :class:`DLPVCLib.dataset.PVCDataset`), which seed 003, with 10,000 cases, did not
  need; with the few hundred cases a CPU can simulate and train on it stands each case for 8.
- train/validation split: the dataset manifest's (:func:`DLPVCLib.dataset.split_of`); the test
  split is never touched here.
- fine-tuning: ``--init-model NAME`` starts from the weights of an installed model (same
  architecture) instead of random ones; the summary and the model card then record that model's
  own training as the first stage (:func:`initial_model`).

Under ``torchrun --nproc_per_node=K`` the same command trains on K processes (``--batch-size`` is the global
batch; :mod:`DosimetryCore.learning.distributed`); rank 0 alone writes the outputs.

The run writes into the checkpoint folder: ``latest.pt`` and ``best.pt``
(:func:`DosimetryCore.learning.training.train`), ``loss_curve.png`` and ``training_summary.json`` (what was
trained, on which data, how, how long, on what hardware). ``--save-model NAME`` puts the best
weights into the model registry with a model card; its held-out metrics are added by
``deepdosimetry evaluate-pvc --update-card``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional
from torch.utils.data import ConcatDataset, Dataset

from DLPVCLib.dataset import PVCDataset, manifest_sha256, simulate_command
from DLPVCLib.networks import DLPVCModel
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.progress import ProgressCallback
from DosimetryCore.evaluation.table import image_metrics
from DosimetryCore.learning import losses, models
from DosimetryCore.learning.curves import plot_loss_curve
from DosimetryCore.learning.distributed import is_main_process
from DosimetryCore.learning.runtime import hardware_description, software_versions
from DosimetryCore.learning.training import (
    EpochMetrics,
    LossFunction,
    TrainingResult,
    parallel_training,
    result_record,
    seed_everything,
    train,
)

SSIM_LOSS_WEIGHT = 0.02
"""Weight of 1 - SSIM next to L1 in the ``l1+ssim`` loss.

With the images divided by the truth's maximum, L1 over the whole field of view of a trained
network is about 4e-4 (most voxels hold no activity) and 1 - SSIM inside the active region about
0.07 (``dlpvc-r2unet`` after L1 training, 64^3 test cases), so the SSIM term weighs about three
times the L1 term: it drives the structure, L1 still holds the values and the background.
"""


def _l1_ssim(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 + :data:`SSIM_LOSS_WEIGHT` x (1 - SSIM over ``target > 0``) of images divided by the truth's maximum."""
    similarity = losses.masked_ssim(prediction, target, target > 0, 1.0)
    return functional.l1_loss(prediction, target) + SSIM_LOSS_WEIGHT * (1.0 - similarity).mean()


LOSSES = {"l1": functional.l1_loss, "mse": functional.mse_loss, "l1+ssim": _l1_ssim}
"""Loss functions by name, applied to images divided by the truth's maximum (:func:`normalised_loss`)."""
LOSS_DESCRIPTIONS = {"l1+ssim": f"l1 + {SSIM_LOSS_WEIGHT:g} x (1 - SSIM inside the true active region)"}
"""How the summary and the model card name a loss, where its name alone does not say it all."""

SUMMARY_FILE = "training_summary.json"
LOSS_CURVE_FILE = "loss_curve.png"

DEFAULTS = {"epochs": 100, "batch_size": 2, "lr": 1e-3, "lr_schedule": "plateau", "loss": "l1", "seed": 0}
"""Default training settings (see the module docstring for why)."""

NORMS = ("instance", "batch")
DEFAULT_NORM = {"r2unet": "instance"}
"""Normalisation used when none is given, per architecture (others keep their constructor's default)."""


MONITORED_TRAIN_CASES = 8
"""Training cases (the first of each folder's train split, unmirrored) whose SSIM every epoch records."""


def ssim_monitor(train_sets: Sequence[PVCDataset], val_set: Dataset, device: str | torch.device | None) -> EpochMetrics:
    """``metrics(model)`` -> ``{"train_ssim": ..., "val_ssim": ...}``: the mean SSIM of the metric table
    (:func:`DosimetryCore.evaluation.table.image_metrics`, inside the true active region) of the model's output on
    up to :data:`MONITORED_TRAIN_CASES` training cases (the first of each set, unmirrored) and on every case of
    ``val_set``; the cases come from the training run's own (cached) datasets."""
    per_set = max(1, MONITORED_TRAIN_CASES // len(train_sets))
    train_pairs = [t.pair(i) for t in train_sets for i in range(min(per_set, len(t)))]
    target = resolve_device(device)

    def mean_ssim(model: torch.nn.Module, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
        values = []
        for spect, truth in pairs:
            output = model(spect[None].to(target))[0, 0].float().cpu().numpy()
            values.append(image_metrics(output, truth[0].numpy())["ssim"])
        return float(np.mean(values))

    val_pairs = [val_set[i] for i in range(len(val_set))]  # the cached tensors themselves, not copies
    return lambda model: {"train_ssim": mean_ssim(model, train_pairs), "val_ssim": mean_ssim(model, val_pairs)}


@dataclass
class TrainingRun:
    """A finished :func:`train_dlpvc`: the model (best epoch's weights), the loop's result and the summary."""

    model: DLPVCModel
    result: TrainingResult
    summary: dict[str, Any]
    summary_path: Path
    loss_curve: Path


def normalised_loss(name: str) -> LossFunction:
    """``loss(prediction, target)``: :data:`LOSSES` ``[name]`` of both images divided by each target's maximum.

    Shapes ``(B, 1, z, y, x)`` in Bq/mL; returns a dimensionless scalar, the mean over voxels and
    samples.
    """
    if name not in LOSSES:
        raise ValueError(f"loss: unknown {name!r}; choose one of {', '.join(LOSSES)}")
    function = LOSSES[name]

    def loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        scale = target.flatten(1).amax(dim=1).clamp_min(torch.finfo(target.dtype).tiny)
        scale = scale.view(-1, *([1] * (target.ndim - 1)))
        return function(prediction / scale, target / scale)

    return loss


def _data_record(train_sets: Sequence[PVCDataset], n_val: int) -> dict[str, Any]:
    """On which data a run trains: one dataset folder's record, or several folders' (``datasets``) with the
    totals, grid and input they share."""
    records = [
        {
            "folder": str(train_set.folder.resolve()),
            "manifest_sha256": manifest_sha256(train_set.folder),
            "simulated_with": simulate_command(train_set.manifest),
            "dataset_seed": train_set.manifest["dataset_seed"],
            "kind": train_set.manifest.get("kind", "random"),
            "n_train": len(train_set),
        }
        for train_set in train_sets
    ]
    manifest = train_sets[0].manifest
    shared = {
        "size": manifest["size"],
        "spacing_mm": manifest["spacing_mm"],
        "views": manifest["acquisition"]["views"],
        "total_activity_range_MBq": [
            min(t.manifest["total_activity_range_MBq"][0] for t in train_sets),
            max(t.manifest["total_activity_range_MBq"][1] for t in train_sets),
        ],
        "input": train_sets[0].input_key,
        "target": "truth",
        "n_train": sum(len(t) for t in train_sets),
        "n_val": n_val,
    }
    if len(records) == 1:
        return records[0] | shared
    hashes = "".join(record["manifest_sha256"] for record in records)
    return {
        "folder": [record["folder"] for record in records],
        "manifest_sha256": hashlib.sha256(hashes.encode()).hexdigest(),
        "simulated_with": " ; ".join(record["simulated_with"] for record in records),
        "dataset_seed": [record["dataset_seed"] for record in records],
        "kind": "+".join(record["kind"] for record in records),
        "datasets": records,
    } | shared


def _description(model: DLPVCModel, train_sets: Sequence[PVCDataset], n_val: int, training: dict[str, Any]):
    """What is trained, on which data and how: the first part of the training summary."""
    return {
        "method": "DL-PVC (Leube et al., J Nucl Med 2024;65:980-987)",
        "model": {
            "config": model.config,
            "parameters": sum(p.numel() for p in model.parameters()),
            "input": f"{train_sets[0].input_key} / its maximum",
            "output": "softplus, scaled to the input's total activity (Bq/mL)",
        },
        "data": _data_record(train_sets, n_val),
        "training": training,
    }


def _datasets(data: Sequence[str | os.PathLike], input_key: str, flips: bool) -> tuple[Dataset, Dataset, list]:
    """The train and val splits of every folder of ``data``, concatenated, cached in memory; the folders must
    share the grid and the protocol."""
    train_sets = [PVCDataset(folder, "train", input_key, flips=flips, cache=True) for folder in data]
    val_sets = [PVCDataset(t.folder, "val", input_key, cache=True) for t in train_sets if _has_split(t.manifest, "val")]
    if not val_sets:
        raise ValueError(f"data: the 'val' split is empty in {', '.join(map(str, data))}; simulate more cases (--n)")
    first = train_sets[0].manifest
    for train_set in train_sets[1:]:
        for key in ("size", "spacing_mm", "acquisition"):
            if train_set.manifest[key] != first[key]:
                raise ValueError(
                    f"data: {train_set.folder} differs from {train_sets[0].folder} in {key} "
                    f"({train_set.manifest[key]} vs {first[key]}); train on datasets of one grid and protocol"
                )
    return ConcatDataset(train_sets), ConcatDataset(val_sets), train_sets


def _has_split(manifest: dict[str, Any], split: str) -> bool:
    return manifest["split_counts"].get(split, 0) > 0


def _build(arch: str, channels: Sequence[int] | None, norm: str | None) -> DLPVCModel:
    """The untrained model: ``arch`` with ``channels`` and ``norm`` (see :func:`train_dlpvc`)."""
    if norm is not None and norm not in NORMS:
        raise ValueError(f"norm: unknown {norm!r}; choose one of {', '.join(NORMS)}")
    kwargs: dict[str, Any] = {} if channels is None else {"channels": [int(c) for c in channels]}
    norm = norm or DEFAULT_NORM.get(str(arch).lower())
    if norm is not None:
        kwargs["norm"] = norm.upper()
    try:
        return DLPVCModel(arch, **kwargs)
    except TypeError as error:
        raise ValueError(f"norm: {arch} has no normalisation option ({error})") from error


def initial_model(model: DLPVCModel, name: str, folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """Load installed model ``name``'s weights into ``model`` to fine-tune it; returns how ``name`` was trained
    (:func:`DosimetryCore.learning.models.initialise_from`; ``--arch``, ``--channels`` and ``--norm`` must match
    its architecture or be left out)."""
    return models.initialise_from(
        model, name, DLPVCModel.from_config, folder, "leave out --arch, --channels and --norm or make them match"
    )


def train_dlpvc(
    data: str | os.PathLike | Sequence[str | os.PathLike],
    checkpoint_dir: str | os.PathLike,
    *,
    arch: str = "r2unet",
    channels: Sequence[int] | None = None,
    norm: str | None = None,
    input_key: str = "osem_rr_noisy",
    loss: str = DEFAULTS["loss"],
    epochs: int = DEFAULTS["epochs"],
    batch_size: int = DEFAULTS["batch_size"],
    lr: float = DEFAULTS["lr"],
    lr_schedule: str = DEFAULTS["lr_schedule"],
    seed: int = DEFAULTS["seed"],
    flips: bool = True,
    precision: str = "float32",
    patience: int | None = None,
    resume: bool = False,
    init_model: str | None = None,
    models_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    command: str | None = None,
    progress: ProgressCallback | None = None,
) -> TrainingRun:
    """Train a :class:`~DLPVCLib.networks.DLPVCModel` on the train split of a DL-PVC dataset.

    Args:
        data: dataset folder of :func:`DLPVCLib.dataset.write_dataset` (train and val splits used), or several
            (their splits concatenated: e.g. random shapes, torsos and warm shapes mixed; same grid and protocol).
            The cases are kept in memory once read.
        checkpoint_dir: folder for checkpoints, loss curve and summary (created).
        arch, channels: network (:data:`DLPVCLib.networks.ARCHITECTURES`) and its channels per level.
        norm: ``"instance"`` or ``"batch"`` normalisation layers (``None``: :data:`DEFAULT_NORM`,
            instance for R2U-Net; the attention U-Net takes none).
        input_key: the reconstruction to correct, one of :data:`DLPVCLib.dataset.RECONSTRUCTIONS`.
        loss: ``"l1"``, ``"mse"`` or ``"l1+ssim"`` (:func:`normalised_loss`).
        flips: augment the training cases with random mirroring along z, y and x
            (:class:`~DLPVCLib.dataset.PVCDataset` ``flips``); validation cases are never flipped.
        precision: ``"float32"`` or ``"bf16"`` (autocast in the training steps; validation in float32), see
            :func:`DosimetryCore.learning.training.train`. Every epoch's history also holds the mean SSIM
            (:func:`ssim_monitor`) of up to :data:`MONITORED_TRAIN_CASES` training cases and of the validation
            cases, so the loss curve shows whether the network under-fits (both alike) or over-fits.
        epochs, batch_size, lr, lr_schedule, seed, resume, device, progress: as in
            :func:`DosimetryCore.learning.training.train`; ``patience`` is its ``early_stop_patience``.
        init_model: start from this installed model's weights (:func:`initial_model`) instead of
            random ones; ``models_dir`` is the registry folder it is read from (default
            ``Resources/Models``).
        command: the command line to record in the summary.

    Returns:
        :class:`TrainingRun`. The summary (also in ``training_summary.json``) holds the model
        configuration and size, the data (folder, manifest sha256, cases per split, input), the
        settings, the history, best epoch, wall time (s), the hardware and ``initialised_from``
        (:func:`initial_model`'s record, or ``None``).

    Raises:
        ValueError: missing or incomplete data, an empty train or val split, unknown
            architecture, input or loss, a grid the network cannot take, a refused checkpoint,
            an initial model that is not installed or of another architecture.
    """
    loss_fn = normalised_loss(loss)
    folders = [data] if isinstance(data, str | os.PathLike) else list(data)
    train_set, val_set, train_sets = _datasets(folders, input_key, flips)
    seed_everything(seed)
    model = _build(arch, channels, norm)
    size = train_sets[0].manifest["size"]
    if size % model.required_multiple:
        raise ValueError(
            f"data: the {size}^3 grid is not a multiple of {model.required_multiple}, which {arch} with channels "
            f"{model.config.get('channels', 'default')} needs; simulate another --size or give fewer --channels"
        )
    initialised_from = None if init_model is None else initial_model(model, init_model, models_dir)
    checkpoint_dir = Path(checkpoint_dir)
    settings = {"lr": lr, "lr_schedule": lr_schedule, "batch_size": batch_size, "epochs": epochs, "seed": seed,
                "precision": precision}  # fmt: skip
    monitor = ssim_monitor(train_sets, val_set, device)
    started = time.perf_counter()
    result = train(
        model,
        train_set,
        val_set,
        loss_fn,
        checkpoint_dir=checkpoint_dir,
        device=device,
        resume=resume,
        early_stop_patience=patience,
        model_config=model.config,
        epoch_metrics=monitor,
        progress=progress,
        **settings,
    )
    run_time = time.perf_counter() - started
    curve, summary_path = checkpoint_dir / LOSS_CURVE_FILE, checkpoint_dir / SUMMARY_FILE
    training = {
        "loss": f"{LOSS_DESCRIPTIONS.get(loss, loss)} of prediction and truth divided by the truth's maximum",
        "optimiser": "Adam",
        "augmentation": "random mirroring along z, y and x" if flips else "none",
        **settings,
        "early_stop_patience": patience,
    }
    summary = {
        **_description(model, train_sets, len(val_set), training),
        "result": result_record(result, run_time),
        "hardware": hardware_description(device, result.world_size),
        "initialised_from": initialised_from,
        "versions": software_versions(),
        "command": command,
        "checkpoints": {"best": str(result.best_checkpoint), "latest": str(result.latest_checkpoint)},
        "loss_curve": str(curve),
    }
    if is_main_process():  # under torchrun, rank 0 writes the outputs
        plot_loss_curve(result.history, curve)
        summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return TrainingRun(model.cpu().eval(), result, summary, summary_path, curve)


SEED_003_TRAINING = {"size": 128, "spacing_mm": 4.8, "cases": 10_000}
"""Seed 003's training setting: 128^3 voxels of 4.8 mm, 10,000 simulated cases (on a GPU)."""


def departures_from_the_paper(summary: dict[str, Any]) -> list[str]:
    """How a training run differs from Leube et al.'s, in words, for the model card (never empty)."""
    data = summary["data"]
    size, spacing = data["size"], data["spacing_mm"]
    cases = data["n_train"] + data["n_val"]
    notes = []
    if (size, spacing) != (SEED_003_TRAINING["size"], SEED_003_TRAINING["spacing_mm"]):
        notes.append(
            f"network grid {size}^3 voxels of {spacing:g} mm, not Leube et al.'s 128^3 of 4.8 mm: a SPECT is resampled "
            f"onto it and its correction carried back as a gain, so detail finer than {spacing:g} mm is not corrected"
        )
    if cases < SEED_003_TRAINING["cases"]:
        notes.append(f"{cases} simulated training and validation cases, not Leube et al.'s 10,000")
    if str(summary["hardware"]).startswith("cpu"):
        hours = models.total_training(summary)[1] / 3600.0
        notes.append(f"trained on a CPU (no GPU was available), {hours:.1f} h in all, at a grid and data size to match")
    notes.append("analytic torso phantoms, not XCAT; scatter neither simulated nor corrected")
    return notes


KIND_WORDS = {
    "random": "random activity shapes in cold synthetic torsos",
    "torso": "patient-like PSMA/DOTATATE torsos",
    "warm": "random shapes over warm synthetic torsos",
}


def _card_datasets(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each training dataset's record for the card: without the folder path of the machine that trained."""
    return [{key: value for key, value in record.items() if key != "folder"} | {"data": Path(record["folder"]).name}
            for record in records]  # fmt: skip


def _kinds_in_words(data: dict[str, Any]) -> str:
    """The training cases' kinds in words, with the train-case count of each where there are several."""
    records = data.get("datasets")
    if not records:
        return KIND_WORDS[data.get("kind", "random")]
    return ", ".join(f"{r['n_train']} train of {KIND_WORDS[r['kind']]}" for r in records)


def card_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """Model card fields (:data:`DosimetryCore.learning.models.REQUIRED_CARD_FIELDS`) of a training summary.

    ``grid`` is the training grid (x, y, z voxels and mm), which :mod:`DLPVCLib.correction` resamples
    a SPECT onto. ``metrics`` and ``baselines`` are empty: :mod:`DLPVCLib.evaluation` fills them with the
    held-out results (``evaluate-pvc --update-card``). ``epochs`` and ``wall_time_s`` are this run's;
    a fine-tuned model's card adds ``initialised_from`` (how its initial model was trained) and
    ``total_epochs`` / ``total_wall_time_s`` over all stages.
    """
    data = summary["data"]
    total_epochs, total_seconds = models.total_training(summary)
    return {
        "architecture": summary["model"]["config"],
        "training_data": {
            "description": (
                f"{data['n_train']} training and {data['n_val']} validation cases of {_kinds_in_words(data)} "
                f"with simulated 177Lu SPECT ({data['input']} as input), as Leube et al."
            ),
            "simulated_with": data["simulated_with"],
            "manifest_sha256": data["manifest_sha256"],
            "dataset_seed": data["dataset_seed"],
            "n_train": data["n_train"],
            "n_val": data["n_val"],
            **({"datasets": _card_datasets(data["datasets"])} if "datasets" in data else {}),
        },
        "grid": {"size": [data["size"]] * 3, "spacing_mm": [data["spacing_mm"]] * 3},
        "training_domain": {
            "spacing_mm": [data["spacing_mm"]] * 3,
            "total_activity_MBq": data.get("total_activity_range_MBq"),
        },
        "training_command": summary["command"],
        "hardware": summary["hardware"],
        "wall_time_s": summary["result"]["wall_time_s"],
        "epochs": summary["result"]["epochs_run"],
        "metrics": {},
        "baselines": {},
        "input": data["input"],
        "loss": summary["training"]["loss"],
        "best_epoch": summary["result"]["best_epoch"],
        "parameters": summary["model"]["parameters"],
        "augmentation": summary["training"].get("augmentation", "none"),
        "precision": summary["training"].get("precision", "float32"),
        "departures_from_the_paper": departures_from_the_paper(summary),
        "initialised_from": summary.get("initialised_from"),
        "total_epochs": total_epochs,
        "total_wall_time_s": total_seconds,
        "parallel_training": parallel_training(summary["result"]),
    }
