"""Data-parallel training under ``torchrun``: the process group, the model wrapper and the epoch sampler.

``torchrun --nproc_per_node=K [--nnodes N ...] deepdosimetry train <method> ...`` starts K x N copies of the
command with ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set; :func:`join` turns that environment into a
:class:`Group` (gloo on CPU, NCCL on CUDA, one GPU per process: ``cuda:LOCAL_RANK``). Without it, or with a world
of one, :func:`join` gives :data:`SINGLE`, which does nothing, so that one training loop serves both.

Each process trains on its share of every global batch (:class:`EpochSampler`: rank r takes positions r, r + K,
... of the epoch's order), and DistributedDataParallel averages the gradients, so K processes at a per-process
batch of B / K take the steps one process takes at a batch of B, up to float rounding.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import distributed, nn
from torch.utils.data import DistributedSampler

from DosimetryCore.core.progress import Cancelled, ProgressCallback


@dataclass(frozen=True)
class Group:
    """The processes training one model: ``world_size`` of them, this one ``rank`` (0: the main one)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    started_here: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, logs and model cards and reports progress."""
        return self.rank == 0

    def sum(self, values: Sequence[float], device: torch.device) -> list[float]:
        """``values`` summed over every process (float64); unchanged in a single process."""
        if self.world_size == 1:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
        distributed.all_reduce(tensor)
        return tensor.tolist()

    def on_main(self, report: ProgressCallback, fraction: float, message: str, device: torch.device) -> None:
        """``report(fraction, message)`` on the main process; when it raises :class:`Cancelled`, every process
        raises it (one all-reduce, so that all stop at the same batch)."""
        if self.world_size == 1:
            report(fraction, message)
            return
        cancelled = 0.0
        if self.is_main:
            try:
                report(fraction, message)
            except Cancelled:
                cancelled = 1.0
        if self.sum([cancelled], device)[0]:
            raise Cancelled("training cancelled on the main process")

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` for the training steps: DistributedDataParallel over the group (itself when alone)."""
        if self.world_size == 1:
            return model
        device_ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def barrier(self) -> None:
        """Wait until every process reaches this point (after the main one wrote a checkpoint)."""
        if self.world_size > 1:
            distributed.barrier()

    def close(self) -> None:
        """End the process group when :func:`join` started it."""
        if self.started_here:
            distributed.destroy_process_group()


SINGLE = Group()
"""One process: no process group, every method a no-op."""


def environment() -> tuple[int, int, int]:
    """``(WORLD_SIZE, RANK, LOCAL_RANK)`` set by ``torchrun`` (``(1, 0, 0)`` without it)."""
    values = []
    for name, default in (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0)):
        text = os.environ.get(name, str(default))
        try:
            values.append(int(text))
        except ValueError as error:
            raise ValueError(f"{name}: expected an integer (set by torchrun), got {text!r}") from error
    world_size, rank, local_rank = values
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"RANK {rank} and WORLD_SIZE {world_size}: expected 0 <= RANK < WORLD_SIZE")
    return world_size, rank, local_rank


def is_main_process() -> bool:
    """Whether this is the process that writes outputs: rank 0 under ``torchrun``, always alone."""
    return environment()[1] == 0


def process_device(device: torch.device, local_rank: int) -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` when training on CUDA under torchrun, else ``device``."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank)
    return device


def join(device: torch.device) -> Group:
    """The group of the ``torchrun`` environment (:data:`SINGLE` without one); starts the process group (gloo on
    CPU, NCCL on CUDA, rendezvous through torchrun's ``MASTER_ADDR``/``MASTER_PORT``) unless already started."""
    world_size, rank, local_rank = environment()
    if world_size == 1:
        return SINGLE
    started_here = not distributed.is_initialized()
    if started_here:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if distributed.get_world_size() != world_size:
        raise ValueError(f"WORLD_SIZE {world_size} differs from the process group's {distributed.get_world_size()}")
    return Group(world_size, rank, local_rank, started_here)


class EpochSampler(DistributedSampler):
    """This process's share of an epoch's order: positions ``rank``, ``rank + world_size``, ... of
    ``order(epoch)`` (a permutation of the dataset), padded as :class:`DistributedSampler` pads (repeating the
    first positions) when the dataset does not divide by the world size; :meth:`set_epoch` picks the epoch."""

    def __init__(self, dataset, group: Group, order: Callable[[int], list[int]]) -> None:
        super().__init__(dataset, num_replicas=group.world_size, rank=group.rank, shuffle=False)
        self.order = order

    def __iter__(self) -> Iterator[int]:
        indices = self.order(self.epoch)
        indices += indices[: self.total_size - len(indices)]
        return iter(indices[self.rank : self.total_size : self.num_replicas])
