"""Seconds per DL-PVC training step (forward, L1 loss, backward, Adam) by grid, batch and precision.

Usage: ``python benchmarks/dlpvc_step.py [--sizes 64 96 128] [--batch-sizes 1 2] [--threads 2] [--steps 3]``

The network is the shipped architecture (R2U-Net, instance normalisation, default channels) on random
inputs; bf16 is ``torch.autocast("cpu", torch.bfloat16)`` around forward and loss. What it answers: whether the
clinical 128^3 x 4.8 mm grid (or 64^3 crops of it) trains on this machine in the time a run has, and whether
bf16 pays (its accuracy is a separate question: train both and compare held-out metrics).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional

from DLPVCLib.networks import DLPVCModel


def step_seconds(size: int, batch: int, bf16: bool, steps: int) -> float:
    """Median wall time (s) of ``steps`` training steps after one warm-up step."""
    torch.manual_seed(0)
    model = DLPVCModel("r2unet", norm="INSTANCE").train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, size, size, size) + 0.01
    target = torch.rand_like(x)
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        optimiser.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = functional.l1_loss(model(x).float(), target)
        loss.backward()
        optimiser.step()
        times.append(time.perf_counter() - started)
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--steps", type=int, default=3)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    print(f"{arguments.threads} torch thread(s)")
    print("| grid | batch | float32 s/step | bf16 autocast s/step | bf16 speed-up |")
    print("|---|---|---|---|---|")
    for size in arguments.sizes:
        for batch in arguments.batch_sizes:
            fp32 = step_seconds(size, batch, False, arguments.steps)
            bf16 = step_seconds(size, batch, True, arguments.steps)
            print(f"| {size}^3 | {batch} | {fp32:.2f} | {bf16:.2f} | {fp32 / bf16:.2f} |", flush=True)


if __name__ == "__main__":
    main()
