"""The one training loop every DeepDosimetry network is trained with.

:func:`train` fits a model to ``(input, target)`` pairs with Adam, validates after every epoch,
keeps two checkpoints in ``checkpoint_dir`` (``latest.pt`` after every epoch and ``best.pt`` at the
lowest validation loss, both written atomically), resumes from ``latest.pt``, stops early when the
validation loss stops improving, and reports progress through a ``progress(fraction, message)``
callback after every batch.

Reproducibility: at the start of every epoch the Python, numpy and torch generators are seeded
from ``(seed, epoch)`` and the batch order is drawn from the same seed, so a run resumed after
epoch ``k`` continues exactly as the uninterrupted run would have. The weights the model starts
from are the caller's: call :func:`seed_everything` before building the model. On CPU two runs
with the same seed give identical losses; on CUDA some kernels (atomic adds) are not bitwise
deterministic, so losses agree only to rounding.

Under ``torchrun --nproc_per_node=K`` (see :mod:`DosimetryCore.learning.distributed`) the same call trains with
DistributedDataParallel: ``batch_size`` is the global batch, each process takes ``batch_size / K`` samples of
every global batch, losses are summed over the processes (so every process sees the same training and
validation loss, early stop and cancel), and only the main process (rank 0) writes checkpoints and reports
progress. A checkpoint resumes with any number of processes. With K processes the steps are those of one
process up to float rounding, as long as the data draw no random numbers of their own (augmentation, dropout):
those draw from a stream per process (rank 0's being the single-process one).
"""

from __future__ import annotations

import gc
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.core.validation import check_seed
from DosimetryCore.io.outputs import atomic_path
from DosimetryCore.learning.distributed import EpochSampler, Group, environment, join, process_device

LATEST_CHECKPOINT = "latest.pt"
BEST_CHECKPOINT = "best.pt"
CHECKPOINT_FORMAT = 1
LR_SCHEDULES = ("constant", "cosine", "plateau")
PLATEAU_FACTOR = 0.5
"""``plateau`` schedule: the learning rate is multiplied by this..."""
PLATEAU_PATIENCE = 5
"""...after this many epochs without a lower validation loss."""

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TrainingData = Dataset | tuple[torch.Tensor, torch.Tensor]

# Settings a resumed run must share with the run that wrote the checkpoint.
_RESUME_SETTINGS = ("seed", "batch_size", "lr", "lr_schedule")

PRECISIONS = ("float32", "bf16")
"""Precisions of the training steps (:func:`train` ``precision``)."""

EpochMetrics = Callable[[nn.Module], dict[str, float]]
"""``epoch_metrics(model)`` -> further numbers for an epoch's history entry (see :func:`train`)."""


@dataclass
class TrainingResult:
    """What :func:`train` did.

    Attributes:
        history: one dict per completed epoch (including epochs of earlier, resumed runs):
            ``epoch`` (1-based), ``train_loss`` and ``val_loss`` (sample means), ``lr`` (used in
            that epoch), ``wall_time_s`` (seconds the epoch took) and ``world_size`` (processes that
            trained it).
        best_epoch: 1-based epoch with the lowest validation loss; the model holds its weights.
        best_val_loss: that validation loss.
        stopped_early: whether early stopping ended the run before ``epochs``.
        latest_checkpoint: path of ``latest.pt``.
        best_checkpoint: path of ``best.pt``.
        world_size: processes of this run (``torchrun``'s ``WORLD_SIZE``; 1 alone).
        batch_size: the global batch (samples per step over all processes); each process takes
            ``batch_size / world_size``.
        lr: the Adam learning rate the run started with.
    """

    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    latest_checkpoint: Path
    best_checkpoint: Path
    world_size: int = 1
    batch_size: int = 0
    lr: float = 0.0

    @property
    def wall_time_s(self) -> float:
        """Total training time in seconds, summed over the epochs of all (resumed) runs."""
        return float(sum(entry["wall_time_s"] for entry in self.history))


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global generator, for code that still uses it
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of 0-based ``epoch`` of a run seeded with ``seed`` (independent streams per epoch) on process
    ``rank`` of a torchrun world (rank 0's is the single-process seed)."""
    entropy = [seed, epoch] if rank == 0 else [seed, epoch, rank]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _dataset(data: TrainingData, name: str) -> Dataset:
    if isinstance(data, tuple):
        if len(data) != 2 or not all(isinstance(item, torch.Tensor) for item in data):
            raise ValueError(f"{name}: expected a Dataset or an (inputs, targets) pair of tensors")
        if len(data[0]) != len(data[1]):
            raise ValueError(f"{name}: {len(data[0])} inputs but {len(data[1])} targets")
        data = TensorDataset(*data)
    if not isinstance(data, Dataset):
        raise ValueError(f"{name}: expected a Dataset or an (inputs, targets) pair of tensors, got {type(data)}")
    if len(data) == 0:
        raise ValueError(f"{name}: is empty")
    return data


def _scheduler(optimizer: torch.optim.Optimizer, lr_schedule: str, epochs: int):
    if lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE)
    return None


def _save_atomic(checkpoint: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as temporary:
        torch.save(checkpoint, temporary)


def load_checkpoint(path: str | Path, device: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`train` (tensors only, ``weights_only=True``) onto ``device``.

    Keys: ``format``, ``epoch`` (completed epochs), ``model_state``, ``optimizer_state``,
    ``scheduler_state``, ``history``, ``seed``, ``settings``, ``model_config``, ``best_epoch``,
    ``best_val_loss``, ``stopped_early``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint: {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=resolve_device(device), weights_only=True)
    except Exception as error:  # torch raises many kinds (UnpicklingError, IndexError, RuntimeError) on other files
        raise ValueError(f"checkpoint: {path} is not a readable PyTorch checkpoint ({type(error).__name__})") from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint: {path} is not a DeepDosimetry training checkpoint (format {CHECKPOINT_FORMAT})")
    return checkpoint


def _check_resumable(checkpoint: dict[str, Any], settings: dict[str, Any], model_config: Any, path: Path) -> None:
    for key in _RESUME_SETTINGS:
        if checkpoint["settings"][key] != settings[key]:
            raise ValueError(
                f"resume: {key} is {settings[key]!r} but the checkpoint {path} was trained with "
                f"{checkpoint['settings'][key]!r}"
            )
    if model_config is not None and checkpoint["model_config"] not in (None, model_config):
        raise ValueError(
            f"resume: model_config {model_config!r} differs from the checkpoint's {checkpoint['model_config']!r}"
        )


def _mean_loss(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: LossFunction,
    device: torch.device,
    group: Group,
    on_batch: Callable[[int, float], None] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    bf16: bool = False,
) -> float:
    """Sample-mean loss over ``loader`` and the processes of ``group``; with an ``optimizer``, one Adam step per
    batch (every process has as many training batches, and each batch's loss is summed over them; validation
    shares may differ in length, so their sums meet once at the end); ``bf16``: the training forward pass and
    loss under bfloat16 autocast, the backward pass outside it."""
    total, count = 0.0, 0
    for batch, (inputs, targets) in enumerate(loader):
        inputs, targets = inputs.to(device), targets.to(device)
        if optimizer is None:
            loss = loss_fn(model(inputs), targets)
        else:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
        value = loss.item()
        sums = [value * len(inputs), len(inputs), float(not math.isfinite(value))]
        if optimizer is not None:
            sums = group.sum(sums, device)
        if sums[2]:
            raise FloatingPointError(f"training diverged: loss is {sums[0] / sums[1]} at batch {batch + 1}; lower lr")
        total += sums[0]
        count += sums[1]
        if on_batch is not None:
            on_batch(batch, sums[0] / sums[1])
    if optimizer is None:
        total, count = group.sum([total, count], device)
    return total / count


def train(
    model: nn.Module,
    train_data: TrainingData,
    val_data: TrainingData,
    loss_fn: LossFunction,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str | torch.device | None = None,
    checkpoint_dir: str | Path,
    resume: bool = False,
    early_stop_patience: int | None = None,
    lr_schedule: str = "constant",
    model_config: dict[str, Any] | None = None,
    precision: str = "float32",
    epoch_metrics: EpochMetrics | None = None,
    progress: ProgressCallback | None = None,
) -> TrainingResult:
    """Train ``model`` in place with Adam; at the end it holds the weights of the best epoch.

    Args:
        model: the network; moved to ``device``. Its initial weights are the caller's (seed them
            with :func:`seed_everything` before building it).
        train_data, val_data: Datasets of ``(input, target)`` pairs, or ``(inputs, targets)``
            tensor pairs (first dimension: samples).
        loss_fn: ``loss_fn(prediction, target)`` -> scalar mean over the batch.
        epochs: total number of epochs (a resumed run counts the epochs already done).
        batch_size: samples per batch (the last batch of an epoch may be smaller); under torchrun the
            global batch, which must divide by ``WORLD_SIZE``.
        lr: Adam learning rate.
        seed: seeds the data order and all random generators per epoch (see the module docstring).
        device: torch device (``None``: CUDA when available; under torchrun ``cuda:LOCAL_RANK``).
        checkpoint_dir: folder for ``latest.pt`` and ``best.pt`` (created if needed); under torchrun
            the same folder for every process (shared storage across nodes).
        resume: continue from ``checkpoint_dir/latest.pt`` when it exists (seed, batch size, lr and
            schedule must match; ``epochs`` and the number of processes may change); without it, a
            folder that already holds a checkpoint is refused rather than overwritten.
        early_stop_patience: stop after this many epochs without a lower validation loss
            (``None``: never stop early).
        lr_schedule: ``"constant"``, ``"cosine"`` (annealed to 0 over ``epochs``) or ``"plateau"``
            (multiplied by :data:`PLATEAU_FACTOR` after :data:`PLATEAU_PATIENCE` epochs without
            improvement), stepped once per epoch.
        model_config: JSON-serialisable constructor arguments stored in the checkpoints so the
            model can be rebuilt (for example ``DLPVCModel.config``).
        precision: ``"float32"`` or ``"bf16"``: the training steps' forward pass and loss under
            ``torch.autocast(dtype=torch.bfloat16)`` (weights, gradients and Adam stay float32); validation
            always runs in float32, the precision of inference, so the best epoch is chosen on what users get.
        epoch_metrics: ``epoch_metrics(model)`` after every epoch's validation (model in eval mode, no
            gradients): a dict of further numbers for the history (e.g. train-split and validation SSIM), on the
            main process.
        progress: ``progress(fraction, message)`` after every batch and epoch; fraction is the
            share of ``epochs`` done. Raising :class:`~DosimetryCore.core.progress.Cancelled` from it
            stops training; checkpoints of completed epochs stay, so the run can be resumed.

    Raises:
        ValueError: bad settings or data, a refused or mismatching checkpoint.
        FloatingPointError: a non-finite training loss.
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"train: epochs ({epochs}) and batch_size ({batch_size}) must be >= 1 and lr ({lr}) > 0")
    check_seed(seed)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule: unknown {lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision: unknown {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if early_stop_patience is not None and early_stop_patience < 1:
        raise ValueError(f"early_stop_patience: must be >= 1 or None, got {early_stop_patience}")
    world_size, _, local_rank = environment()
    if batch_size % world_size:
        raise ValueError(
            f"batch_size: {batch_size} is the global batch and must divide by the {world_size} processes of "
            f"torchrun (WORLD_SIZE); choose a multiple of {world_size}"
        )
    train_set, val_set = _dataset(train_data, "train_data"), _dataset(val_data, "val_data")
    report = progress or no_progress
    device = process_device(resolve_device(device), local_rank)
    checkpoint_dir = Path(checkpoint_dir)
    if (checkpoint_dir / LATEST_CHECKPOINT).exists() and not resume:
        raise ValueError(
            f"checkpoint_dir: {checkpoint_dir} already holds {LATEST_CHECKPOINT}; pass resume=True or use a new folder"
        )
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "lr_schedule": lr_schedule,
        "epochs": epochs,
        "early_stop_patience": early_stop_patience,
        "precision": precision,
    }

    model.to(device)
    group = join(device)
    try:
        return _fit(model, train_set, val_set, loss_fn, settings, device, group, checkpoint_dir, model_config, report,
                    epoch_metrics)  # fmt: skip
    finally:
        gc.collect()  # the DistributedDataParallel wrapper (in a reference cycle) must go before its group does:
        group.close()  # freed at interpreter exit instead, it aborted a process ("terminate called") now and then


def _fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    loss_fn: LossFunction,
    settings: dict[str, Any],
    device: torch.device,
    group: Group,
    checkpoint_dir: Path,
    model_config: dict[str, Any] | None,
    report: ProgressCallback,
    epoch_metrics: EpochMetrics | None,
) -> TrainingResult:
    """The epochs of :func:`train`, its arguments checked, on this process of ``group``."""
    seed, batch_size, lr, epochs = settings["seed"], settings["batch_size"], settings["lr"], settings["epochs"]
    early_stop_patience, lr_schedule = settings["early_stop_patience"], settings["lr_schedule"]
    latest_path, best_path = checkpoint_dir / LATEST_CHECKPOINT, checkpoint_dir / BEST_CHECKPOINT
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = _scheduler(optimizer, lr_schedule, epochs)
    history: list[dict[str, float]] = []
    best_epoch, best_val_loss = 0, math.inf
    if latest_path.exists():
        checkpoint = load_checkpoint(latest_path, device)
        _check_resumable(checkpoint, settings, model_config, latest_path)
        model.load_state_dict(checkpoint["model_state"])
        optimizer.load_state_dict(checkpoint["optimizer_state"])
        if scheduler is not None:
            scheduler.load_state_dict(checkpoint["scheduler_state"])
        history = list(checkpoint["history"])
        best_epoch, best_val_loss = checkpoint["best_epoch"], checkpoint["best_val_loss"]

    def stopping() -> bool:
        return early_stop_patience is not None and len(history) - best_epoch >= early_stop_patience

    def order(epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        return torch.randperm(len(train_set), generator=generator).tolist()

    local_batch = batch_size // group.world_size
    sampler = EpochSampler(train_set, group, order)
    train_loader = DataLoader(train_set, batch_size=local_batch, sampler=sampler)
    val_share = list(range(group.rank, len(val_set), group.world_size))
    val_loader = DataLoader(val_set, batch_size=local_batch, sampler=val_share)
    network = group.wrap(model, device)
    n_batches = len(train_loader)
    while len(history) < epochs and not stopping():
        epoch = len(history)
        started = time.perf_counter()
        seed_everything(epoch_seed(seed, epoch, group.rank))
        sampler.set_epoch(epoch)
        epoch_lr = optimizer.param_groups[0]["lr"]

        def on_batch(batch: int, loss: float, epoch: int = epoch) -> None:
            fraction = (epoch + (batch + 1) / n_batches) / epochs
            message = f"epoch {epoch + 1}/{epochs}, batch {batch + 1}/{n_batches}, loss {loss:.4g}"
            group.on_main(report, fraction, message, device)

        network.train()
        train_loss = _mean_loss(network, train_loader, loss_fn, device, group, on_batch, optimizer,
                                settings["precision"] == "bf16")  # fmt: skip
        model.eval()
        with torch.no_grad():
            val_loss = _mean_loss(model, val_loader, loss_fn, device, group)
            metrics = epoch_metrics(model) if epoch_metrics is not None and group.is_main else {}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(val_loss)
        elif scheduler is not None:
            scheduler.step()
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "lr": epoch_lr,
                "wall_time_s": time.perf_counter() - started,
                "world_size": group.world_size,
                **metrics,
            }
        )
        improved = val_loss < best_val_loss
        if improved:
            best_epoch, best_val_loss = epoch + 1, val_loss
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch + 1,
            "model_state": model.state_dict(),
            "optimizer_state": optimizer.state_dict(),
            "scheduler_state": None if scheduler is None else scheduler.state_dict(),
            "history": history,
            "seed": seed,
            "settings": settings,
            "model_config": model_config,
            "best_epoch": best_epoch,
            "best_val_loss": best_val_loss,
            "stopped_early": stopping(),
            "world_size": group.world_size,
        }
        if group.is_main:
            if improved:
                _save_atomic(checkpoint, best_path)
            _save_atomic(checkpoint, latest_path)
        message = f"epoch {epoch + 1}/{epochs}: train loss {train_loss:.4g}, val {val_loss:.4g}"
        group.on_main(report, (epoch + 1) / epochs, message, device)

    group.barrier()  # best.pt is written
    if not best_path.is_file():
        raise ValueError(
            f"checkpoint_dir: {checkpoint_dir} holds no {BEST_CHECKPOINT} for rank {group.rank}; under torchrun every "
            "process must see the same folder (shared storage on several nodes)"
        )
    model.load_state_dict(load_checkpoint(best_path, device)["model_state"])
    message = f"training done: best val loss {best_val_loss:.4g} at epoch {best_epoch}"
    group.on_main(report, 1.0, message, device)
    return TrainingResult(
        history=history,
        best_epoch=best_epoch,
        best_val_loss=best_val_loss,
        stopped_early=stopping(),
        latest_checkpoint=latest_path,
        best_checkpoint=best_path,
        world_size=group.world_size,
        batch_size=batch_size,
        lr=lr,
    )


def result_record(result: TrainingResult, this_run_wall_time_s: float) -> dict[str, Any]:
    """What a training run did, for its summary: epochs run, best epoch and loss, early stop, wall times (s),
    processes (``world_size``), global and per-process batch, learning rate, and the per-epoch history."""
    return {
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "stopped_early": result.stopped_early,
        "wall_time_s": result.wall_time_s,
        "seconds_per_epoch": result.wall_time_s / len(result.history),
        "this_run_wall_time_s": this_run_wall_time_s,
        "world_size": result.world_size,
        "global_batch_size": result.batch_size,
        "batch_size_per_process": result.batch_size // result.world_size,
        "lr": result.lr,
        "history": result.history,
    }


def parallel_training(record: dict[str, Any]) -> dict[str, Any]:
    """For a model card: processes that trained (``world_size``), the global and per-process batch and the
    learning rate, from a :func:`result_record` (records from before these were kept give ``world_size`` 1)."""
    keys = ("global_batch_size", "batch_size_per_process", "lr")
    return {"world_size": record.get("world_size", 1)} | {key: record.get(key) for key in keys}
