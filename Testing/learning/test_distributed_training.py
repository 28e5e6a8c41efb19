"""DosimetryCore.learning.distributed and train() under ``torchrun --nproc_per_node=2`` (gloo, CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from learning.test_training import SETTINGS, losses, tiny_model, volumes
from torch import nn

from DosimetryCore.learning.distributed import SINGLE, environment, is_main_process, join
from DosimetryCore.learning.training import LATEST_CHECKPOINT, load_checkpoint, train

HERE = Path(__file__).resolve().parent


def torchrun(script_and_arguments: list[str], processes: int = 2) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc_per_node=N ...`` (what ``torchrun`` is), one thread
    per process, Testing/ importable, its output captured."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    process = subprocess.Popen([*command, *script_and_arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=environment, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # torchrun and its workers: none is left behind
        stdout, stderr = process.communicate()
        raise AssertionError(f"torchrun did not finish in 300 s: {stderr[-3000:]}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def flat(history: list[dict]) -> list[float]:
    """Training and validation loss of every epoch, in one list."""
    return [loss for pair in losses(history) for loss in pair]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The tiny model trained by 2 processes (global batch 4, 2 per process), and a run cancelled on rank 0."""
    out = tmp_path_factory.mktemp("torchrun")
    ranks = [{}, {}]
    for mode, folder in (("ddp", out / "ddp"), ("cancel", out / "cancelled")):
        folder.mkdir()
        finished = torchrun([str(HERE / "torchrun_tiny_training.py"), mode, str(folder)])
        assert finished.returncode == 0, finished.stderr[-3000:]
        for rank in (0, 1):
            ranks[rank] |= json.loads((folder / f"rank_{rank}.json").read_text())
    return out, ranks


def test_two_processes_take_the_steps_of_one_with_the_same_global_batch(two_processes, tmp_path):
    out, ranks = two_processes
    single = train(tiny_model(), volumes(16, 1), volumes(6, 2), nn.functional.mse_loss, epochs=3,
                   checkpoint_dir=tmp_path / "single", **SETTINGS)  # fmt: skip
    ddp = load_checkpoint(out / "ddp" / LATEST_CHECKPOINT)
    reference = load_checkpoint(single.latest_checkpoint)
    for key, value in reference["model_state"].items():
        torch.testing.assert_close(ddp["model_state"][key], value, rtol=1e-5, atol=1e-6)
    assert losses(ranks[0]["history"]) == losses(ranks[1]["history"])  # every rank sees the same losses
    assert flat(ranks[0]["history"]) == pytest.approx(flat(single.history), rel=1e-6)
    assert [entry["world_size"] for entry in ddp["history"]] == [2, 2, 2] and ranks[1]["world_size"] == 2
    assert ddp["settings"]["batch_size"] == SETTINGS["batch_size"]  # the global batch
    assert not ranks[0]["group_left_running"]  # train() ends the process group it started


def test_resume_with_another_world_size(two_processes, tmp_path):
    out, _ = two_processes
    kwargs = {"epochs": 5, "resume": True, **SETTINGS}
    data = (volumes(16, 1), volumes(6, 2), nn.functional.mse_loss)
    alone = train(tiny_model(), *data, checkpoint_dir=tmp_path / "alone", **kwargs)
    resumed_model = tiny_model(seed=99)
    (tmp_path / "resumed").mkdir()
    (tmp_path / "resumed" / LATEST_CHECKPOINT).write_bytes((out / "ddp" / LATEST_CHECKPOINT).read_bytes())
    resumed = train(resumed_model, *data, checkpoint_dir=tmp_path / "resumed", **kwargs)
    assert [entry["world_size"] for entry in resumed.history] == [2, 2, 2, 1, 1]
    assert flat(resumed.history) == pytest.approx(flat(alone.history), rel=1e-5)
    for key, value in load_checkpoint(alone.latest_checkpoint)["model_state"].items():
        torch.testing.assert_close(load_checkpoint(resumed.latest_checkpoint)["model_state"][key], value)


def test_a_cancel_on_rank_0_stops_every_process_at_the_same_batch(two_processes):
    out, ranks = two_processes
    assert [rank.get("cancelled") for rank in ranks] == ["training cancelled on the main process"] * 2
    assert ranks[0]["reports"][-1].startswith("epoch 2/3, batch 2") and "reports" not in ranks[1]  # rank 0 reports
    assert load_checkpoint(out / "cancelled" / LATEST_CHECKPOINT)["epoch"] == 1
    assert all(rank["group_still_running"] for rank in ranks)  # a group the caller started is left to it


def test_the_global_batch_must_divide_by_the_world_size(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert environment() == (3, 1, 1) and not is_main_process()
    with pytest.raises(ValueError, match="batch_size: 4 is the global batch and must divide by the 3 processes"):
        train(tiny_model(), volumes(8, 1), volumes(4, 2), nn.functional.mse_loss, epochs=1,
              checkpoint_dir=tmp_path, **SETTINGS)  # fmt: skip
    assert not tmp_path.joinpath(LATEST_CHECKPOINT).exists()
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(ValueError, match="expected 0 <= RANK < WORLD_SIZE"):
        environment()
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert join(torch.device("cpu")) is SINGLE
