"""Scaling out on this machine: cases per minute on Ray with 1 and 2 workers, training steps per second with 1 and
2 torchrun processes, and what stops the scaling from being linear.

Usage::

    python benchmarks/scale_out.py [--cases 8] [--size 64] [--spacing-mm 9.6] [--views 120] [--out output/scale_out]

Simulation: ``simulate-pvc`` cases of the shipped DL-PVC model's setting (64^3 voxels of 9.6 mm, 120 views;
``write_dataset`` as the command calls it), one torch thread per case, simulated in this process, by the local
pool of 2 workers, and on a local Ray instance of 1 and of 2 CPUs (``--ray``; the instance's start-up is timed
apart). Then what a driver and a case cost besides the simulation: a second run over the complete folder (the
manifest and every case's record checked, nothing simulated), the bytes a case writes and the time writing them.

Training: ``train()`` of an R2U-Net with channels 8, 16, 32 (instance normalisation) on random 32^3 volumes with
the DL-PVC L1 loss, global batch 4, under ``torchrun --nproc_per_node=1`` and ``=2`` with one thread per process,
and alone with 2 threads; steps per second over the epochs after the first.

Timings are of a machine shared with other jobs; they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import distributed

from DLPVCLib import dataset
from DLPVCLib.networks import DLPVCModel
from DLPVCLib.train import normalised_loss
from DosimetryCore import io
from DosimetryCore.learning.ray_cases import RayOptions
from DosimetryCore.learning.training import seed_everything, train

TRAIN_SAMPLES, VAL_SAMPLES, GRID, GLOBAL_BATCH, EPOCHS = 32, 4, 32, 4, 3
ALL_REDUCES = 20


def simulate(out: Path, n: int, grid: dict, **parallel) -> tuple[float, dict[str, float]]:
    """Wall time (s) of writing ``n`` cases into the new folder ``out``, and each case's own time (s)."""
    started = time.perf_counter()
    result = dataset.write_dataset(out, n, 2026, device="cpu", threads=1, **grid, **parallel)
    return time.perf_counter() - started, result.simulated


def ray_run(out: Path, n: int, grid: dict, cpus: int) -> tuple[float, float, dict[str, float]]:
    """Ray instance start-up (s), wall time (s) of the cases on it, each case's time (s)."""
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    start_up = time.perf_counter() - started
    try:
        wall, times = simulate(out, n, grid, ray=RayOptions())
    finally:
        ray.shutdown()
    return start_up, wall, times


def simulation_table(folder: Path, n: int, grid: dict) -> list[str]:
    """Rows of the simulation table and the notes on what stops linear scaling."""
    rows = ["| backend | workers | wall s | cases/min | mean s per case | start-up s |", "|---|---|---|---|---|---|"]
    runs = {}
    wall, times = simulate(folder / "in_process", n, grid)
    runs["in-process"] = (1, wall, times, 0.0)
    wall, times = simulate(folder / "pool2", n, grid, workers=2)
    runs["local pool"] = (2, wall, times, 0.0)
    for cpus in (1, 2):
        start_up, wall, times = ray_run(folder / f"ray{cpus}", n, grid, cpus)
        runs[f"Ray, {cpus} CPU(s)"] = (cpus, wall, times, start_up)
    for name, (workers, wall, times, start_up) in runs.items():
        mean = sum(times.values()) / len(times)
        rows.append(f"| {name} | {workers} | {wall:.1f} | {60 * n / wall:.2f} | {mean:.2f} | {start_up:.1f} |")
    started = time.perf_counter()
    again = dataset.write_dataset(folder / "ray2", n, 2026, device="cpu", threads=1, **grid)
    check = time.perf_counter() - started
    case = folder / "ray2" / "case_00000"
    size = sum(path.stat().st_size for path in case.iterdir())
    images = {path.stem: io.read_image(path) for path in case.glob("*.nrrd")}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for stem, image in images.items():
            io.write_image(image, Path(scratch) / f"{stem}.nrrd")
    write = time.perf_counter() - started
    one, two = runs["Ray, 1 CPU(s)"], runs["Ray, 2 CPU(s)"]
    mean_one = sum(one[2].values()) / n
    mean_two = sum(two[2].values()) / n
    rows += [
        "",
        f"- Ray speed-up 1 -> 2 CPUs: {one[1] / two[1]:.2f} x (linear: 2). A case took {mean_one:.2f} s alone and "
        f"{mean_two:.2f} s with a second case beside it on the other core ({mean_two / mean_one:.2f} x): the two "
        "cores share caches and memory bandwidth, and this machine's other jobs.",
        f"- Outside the cases, the Ray run with 2 CPUs spent {two[1] - sum(two[2].values()) / 2:.1f} s of its "
        f"{two[1]:.1f} s (task scheduling, worker start-up with its torch import, the last case alone), and the "
        f"instance itself {two[3]:.1f} s to start.",
        f"- Driver and manifest: checking {len(again.skipped)} complete cases (manifest written, every record read) "
        f"took {check:.2f} s, {1000 * check / n:.1f} ms a case.",
        f"- I/O: a case writes {size / 1e6:.1f} MB in {len(images) + 1} files; writing its images took {write:.2f} s "
        f"({size / 1e6 / write:.0f} MB/s on this disk), {100 * write / mean_one:.1f} % of a case's time.",
    ]
    return rows


def training_worker(out: Path) -> None:
    """Run under torchrun: train the benchmark model (checkpoints beside ``out``); rank 0 writes the time of every
    batch to ``out``."""
    generator = torch.Generator().manual_seed(0)
    volumes = torch.rand((TRAIN_SAMPLES + VAL_SAMPLES, 1, GRID, GRID, GRID), generator=generator)
    targets = volumes * (1 + torch.rand(volumes.shape, generator=generator))
    seed_everything(0)
    model = DLPVCModel("r2unet", channels=[8, 16, 32], norm="INSTANCE")
    distributed.init_process_group("gloo")  # train() joins it and leaves it running, to time an all-reduce after
    stamps: list[tuple[str, float]] = []
    train(
        model,
        (volumes[:TRAIN_SAMPLES], targets[:TRAIN_SAMPLES]),
        (volumes[TRAIN_SAMPLES:], targets[TRAIN_SAMPLES:]),
        normalised_loss("l1"),
        epochs=EPOCHS,
        batch_size=GLOBAL_BATCH,
        lr=1e-3,
        seed=0,
        device="cpu",
        checkpoint_dir=out.with_suffix(""),  # one folder for every process
        progress=lambda fraction, message: stamps.append((message, time.perf_counter())),
    )
    gradients = torch.zeros(sum(parameter.numel() for parameter in model.parameters()))
    started = time.perf_counter()
    for _ in range(ALL_REDUCES):
        distributed.all_reduce(gradients)
    all_reduce_ms = 1000 * (time.perf_counter() - started) / ALL_REDUCES
    if distributed.get_rank() == 0:
        record = {"stamps": stamps, "parameters": gradients.numel(), "all_reduce_ms": all_reduce_ms}
        out.write_text(json.dumps(record))
    distributed.destroy_process_group()


def steps_per_second(processes: int, threads: int, folder: Path) -> tuple[float, dict]:
    """Training steps per second (global batch :data:`GLOBAL_BATCH`) after the first epoch (validation and
    checkpoints included), and rank 0's record (parameters, time of one all-reduce of that many floats, ms)."""
    out = folder / f"train_{processes}x{threads}.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([*command, __file__, "--train-worker", str(out)], check=True, env=environment)
    record = json.loads(out.read_text())
    stamps = record["stamps"]
    batches = [moment for message, moment in stamps if ", batch " in message and not message.startswith("epoch 1/")]
    start = next(moment for message, moment in stamps if message.startswith("epoch 1/") and ": train loss" in message)
    return len(batches) / (batches[-1] - start), record


def training_table(folder: Path) -> list[str]:
    rows = ["| torchrun processes | threads each | steps/s | samples/s |", "|---|---|---|---|"]
    rates = {}
    for processes, threads in ((1, 1), (2, 1), (1, 2)):
        rate, record = steps_per_second(processes, threads, folder)
        rates[processes, threads] = rate
        rows.append(f"| {processes} | {threads} | {rate:.2f} | {rate * GLOBAL_BATCH:.1f} |")
        if processes == 2:
            all_reduce_ms = record["all_reduce_ms"]
            parameters = record["parameters"]
    step_ms = 1000 / rates[2, 1]
    rows += [
        "",
        f"- torchrun speed-up 1 -> 2 processes: {rates[2, 1] / rates[1, 1]:.2f} x (linear: 2). DDP's gradient "
        f"all-reduce ({parameters} float32, gloo) took {all_reduce_ms:.1f} ms of a {step_ms:.0f} ms step "
        f"({100 * all_reduce_ms / step_ms:.1f} %); the rest is the two processes sharing this machine's cores.",
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--spacing-mm", type=float, default=9.6)
    parser.add_argument("--views", type=int, default=120)
    parser.add_argument("--out", default="output/scale_out")
    parser.add_argument("--train-worker", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.train_worker:
        training_worker(Path(arguments.train_worker))
        return
    folder = Path(arguments.out)
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"--out: {folder} is not empty; give a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    grid = {"size": arguments.size, "spacing_mm": arguments.spacing_mm}
    grid["acquisition"] = replace(dataset.DEFAULT_ACQUISITION, views=arguments.views)
    print(f"simulate-pvc --size {arguments.size} --spacing-mm {arguments.spacing_mm:g} --views {arguments.views}, "
          f"{arguments.cases} cases, 1 torch thread per case, {os.cpu_count()} cores, load average before "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    print("\n".join(simulation_table(folder, arguments.cases, grid)))
    print(f"\ntrain(): R2U-Net channels 8 16 32 on {GRID}^3, global batch {GLOBAL_BATCH}, {TRAIN_SAMPLES} samples")
    print("\n".join(training_table(folder)))
    print(f"\nload average (1, 5, 15 min) at the end: {', '.join(f'{load:.1f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
