"""Run by ``torchrun --nproc_per_node=2`` from test_distributed_training.py, in one of two modes (each its own
torchrun job: initialising a second process group within one job could hang its rendezvous):

- ``ddp``: the tiny model of test_training.py trained by every process (train() starts and ends the group);
- ``cancel``: a group the caller started, which train() joins and leaves running, cancelled on rank 0 only.

Checkpoints go to OUT; each rank writes what it saw to OUT/rank_<r>.json.

    PYTHONPATH=Testing python -m torch.distributed.run --standalone --nproc_per_node=2 torchrun_tiny_training.py \
        ddp|cancel OUT
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from learning.test_training import SETTINGS, tiny_model, volumes
from torch import distributed, nn

from DosimetryCore.core.progress import Cancelled
from DosimetryCore.learning.training import train

EPOCHS, CANCEL_AT = 3, "epoch 2/3, batch 2"


def trained(out: Path) -> dict:
    result = train(
        tiny_model(), volumes(16, 1), volumes(6, 2), nn.functional.mse_loss, epochs=EPOCHS,
        checkpoint_dir=out, **SETTINGS,
    )  # fmt: skip
    return {"history": result.history, "world_size": result.world_size,
            "group_left_running": distributed.is_initialized()}  # fmt: skip


def cancelled(out: Path) -> dict:
    seen: dict = {}

    def cancel_on_rank_0(fraction: float, message: str) -> None:
        seen.setdefault("reports", []).append(message)
        if message.startswith(CANCEL_AT):
            raise Cancelled

    distributed.init_process_group("gloo")  # a group the caller started: train() joins it and leaves it running
    try:
        train(
            tiny_model(), volumes(16, 1), volumes(6, 2), nn.functional.mse_loss, epochs=EPOCHS,
            checkpoint_dir=out, progress=cancel_on_rank_0, **SETTINGS,
        )  # fmt: skip
    except Cancelled as error:
        seen["cancelled"] = str(error) or "Cancelled"
    seen["group_still_running"] = distributed.is_initialized()
    distributed.destroy_process_group()
    return seen


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2])
    seen = trained(folder) if mode == "ddp" else cancelled(folder)
    (folder / f"rank_{os.environ['RANK']}.json").write_text(json.dumps(seen))
