"""Timing of whole-volume DoseRateCNN inference (DoseRateCNNLib.inference.predict_volume) on random inputs.

Usage: ``python benchmarks/dose_cnn_inference.py [--size 512 512 130] [--threads 2] [--chunk 16] [--bf16]``

The grid of Li et al. is 512 x 512 x 130 (0.98 x 0.98 x 3 mm); the network's weights do not change the time.
Prints one table row per run: size, chunk, dtype, seconds, seconds per slice.
"""

from __future__ import annotations

import argparse
import time

import torch

from DoseRateCNNLib.inference import predict_volume
from DoseRateCNNLib.network import ResidualDoseNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=3, default=(512, 512, 130), metavar=("X", "Y", "Z"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=16, help="output slices per forward pass")
    parser.add_argument("--bf16", action="store_true", help="also time bfloat16 autocast on the CPU")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    x, y, z = arguments.size
    model = ResidualDoseNet().eval()
    inputs = torch.rand(3, z, y, x).unbind(0)
    print("| size (x, y, z) | chunk | dtype | threads | seconds | s/slice |")
    print("|---|---|---|---|---|---|")
    for bf16 in (False, True) if arguments.bf16 else (False,):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            predict_volume(model, *inputs, chunk_slices=arguments.chunk)
        seconds = time.perf_counter() - started
        dtype = "bf16 autocast" if bf16 else "float32"
        row = (f"{x} x {y} x {z}", arguments.chunk, dtype, arguments.threads, f"{seconds:.1f}", f"{seconds / z:.2f}")
        print("| " + " | ".join(str(value) for value in row) + " |")


if __name__ == "__main__":
    main()
